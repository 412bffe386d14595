//! The process's open-files limit. Every connection holds a file descriptor, and the soft
//! limit many systems start a process with (1,024) is reached long before the connection
//! caps; the hard limit is what the administrator allows, so the service raises its soft
//! limit to it at start-up and logs the limit it serves with.

/// The open-files limit after [`raise_to_hard_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    /// The limit the process serves with.
    pub soft: u64,
    /// The most it could raise that to.
    pub hard: u64,
    /// The soft limit it started with.
    pub before: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and logs the outcome: the effective
/// limit at info, a failure as a warning (the service then serves with what it has).
#[cfg(unix)]
// `rlim_t` is `u64` on Linux but not on every Unix, so the casts stay.
#[allow(clippy::unnecessary_cast)]
pub fn raise_to_hard_limit() -> Option<OpenFiles> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack frame.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, "cannot read the open-files limit");
        return None;
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        } else {
            let error = std::io::Error::last_os_error();
            tracing::warn!(
                %error,
                soft = before as u64,
                hard = limit.rlim_max as u64,
                "cannot raise the open-files limit to the hard limit"
            );
        }
    }
    let files = OpenFiles {
        soft: limit.rlim_cur as u64,
        hard: limit.rlim_max as u64,
        before: before as u64,
    };
    tracing::info!(
        open_files = files.soft,
        hard_limit = files.hard,
        was = files.before,
        "open-files limit (each connection holds one)"
    );
    Some(files)
}

/// Other systems keep their limit.
#[cfg(not(unix))]
pub fn raise_to_hard_limit() -> Option<OpenFiles> {
    None
}
