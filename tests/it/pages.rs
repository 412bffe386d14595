//! The service's own pages over real HTTP: a policy that lets them load only the service's
//! files, no framing, no referrer; and every file they name is there.

use crate::helpers::{TestApp, http_exchange};

/// The value of header `name` in a response head, if present.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The same-origin files a page names in `src="/…"` and `href="/…"`.
fn files_named(html: &str) -> Vec<String> {
    let mut files = Vec::new();
    for attribute in ["src=\"/", "href=\"/"] {
        for (at, _) in html.match_indices(attribute) {
            let start = at + attribute.len() - 1;
            let end = start + html[start..].find('"').unwrap();
            files.push(html[start..end].to_string());
        }
    }
    files
}

#[tokio::test]
async fn pages_load_only_the_services_files_cannot_be_framed_and_send_no_referrer() {
    let app = TestApp::start().await;
    for path in ["/", "/agent"] {
        let (status, head, body) = http_exchange(app.address, "GET", path, &[]).await;
        assert_eq!(status, 200, "{path}");
        let policy = header(&head, "content-security-policy")
            .unwrap_or_else(|| panic!("{path} has a Content-Security-Policy: {head}"));
        for directive in [
            "default-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        assert_eq!(header(&head, "x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            header(&head, "referrer-policy"),
            Some("no-referrer"),
            "{path}"
        );
        // Nothing inline that the policy would block: the page works under it.
        for inline in ["<script>", "<style", " style=", " onclick="] {
            assert!(!body.contains(inline), "{path} holds {inline}");
        }
        let files = files_named(&body);
        assert!(!files.is_empty(), "{path} names its files");
        for file in files {
            let (status, head, _) = http_exchange(app.address, "GET", &file, &[]).await;
            assert_eq!(status, 200, "{path} names {file}, which is not served");
            assert_eq!(
                header(&head, "x-content-type-options"),
                Some("nosniff"),
                "{file}"
            );
        }
    }
    // The widget's stylesheet, which widget.js loads from beside itself on any shop's page.
    let widget = http_exchange(app.address, "GET", "/widget.js", &[]).await.2;
    assert!(
        widget.contains("'widget.css'"),
        "widget.js loads its stylesheet"
    );
    assert!(
        !widget.contains("el('style')"),
        "widget.js adds no inline style"
    );
    let (status, head, _) = http_exchange(app.address, "GET", "/widget.css", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("text/css; charset=utf-8")
    );
    app.shutdown().await;
}
