//! Reply templates: text with `{variable}` holes, parsed once at load time.
//!
//! Parsing up front means an unknown variable is an operator error reported with file and line
//! when the files are loaded, never a broken reply at run time, and rendering is a single pass
//! of pushes into one `String`.

use std::fmt;

/// A value a template can insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    Shop,
    Agent,
    Courier,
    Days,
    Region,
    Cutoff,
    Dispatch,
    Threshold,
    Back,
    Peak,
    /// The buyer's place in the queue, counting from 1 (the case texts only).
    Place,
    /// How many cases wait before the buyer's (the case texts only).
    Ahead,
    /// The rough wait in minutes, at least 1 (the case texts only).
    Minutes,
}

impl Var {
    pub const ALL: [Var; 13] = [
        Var::Shop,
        Var::Agent,
        Var::Courier,
        Var::Days,
        Var::Region,
        Var::Cutoff,
        Var::Dispatch,
        Var::Threshold,
        Var::Back,
        Var::Peak,
        Var::Place,
        Var::Ahead,
        Var::Minutes,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Var::Shop => "shop",
            Var::Agent => "agent",
            Var::Courier => "courier",
            Var::Days => "days",
            Var::Region => "region",
            Var::Cutoff => "cutoff",
            Var::Dispatch => "dispatch",
            Var::Threshold => "threshold",
            Var::Back => "back",
            Var::Peak => "peak",
            Var::Place => "place",
            Var::Ahead => "ahead",
            Var::Minutes => "minutes",
        }
    }

    /// Whether the variable describes a buyer's queued case, and so means something only in
    /// the texts about it.
    pub fn is_about_the_case(self) -> bool {
        matches!(self, Var::Place | Var::Ahead | Var::Minutes)
    }

    fn from_name(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// Supplies variable values while a template renders; values may be computed lazily.
pub trait VarSource {
    fn write_var(&self, var: Var, out: &mut String);
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Var(Var),
}

/// A parsed reply template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    segments: Vec<Segment>,
    /// When this wording may be sent (a promotion's answer disappears by itself).
    pub validity: Validity,
}

/// The time an answer may be sent in; both ends optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Validity {
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Exclusive.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

impl Validity {
    pub fn contains(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.from.is_none_or(|from| from <= now) && self.until.is_none_or(|until| now < until)
    }

    /// True once the end has passed: the answer will never be sent again.
    pub fn expired(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.until.is_some_and(|until| until <= now)
    }
}

/// Why a template text could not be parsed; the offset is in bytes from the text's start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut rest = text.char_indices().peekable();
        while let Some((offset, c)) = rest.next() {
            match c {
                '{' if rest.peek().is_some_and(|&(_, n)| n == '{') => {
                    rest.next();
                    literal.push('{');
                }
                '}' if rest.peek().is_some_and(|&(_, n)| n == '}') => {
                    rest.next();
                    literal.push('}');
                }
                '{' => {
                    let start = offset + 1;
                    let Some(len) = text[start..].find('}') else {
                        return Err(TemplateError {
                            offset,
                            message: "`{` is not closed; write `{{` for a literal brace".into(),
                        });
                    };
                    let name = text[start..start + len].trim();
                    let Some(var) = Var::from_name(name) else {
                        let known: Vec<_> = Var::ALL.iter().map(|v| v.name()).collect();
                        return Err(TemplateError {
                            offset,
                            message: format!(
                                "unknown template variable `{{{name}}}`; known: {}",
                                known.join(", ")
                            ),
                        });
                    };
                    if !literal.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Var(var));
                    while rest.next_if(|&(i, _)| i <= start + len).is_some() {}
                }
                '}' => {
                    return Err(TemplateError {
                        offset,
                        message: "`}` without `{`; write `}}` for a literal brace".into(),
                    });
                }
                _ => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Text(literal));
        }
        Ok(Template {
            segments,
            validity: Validity::default(),
        })
    }

    pub fn uses(&self, var: Var) -> bool {
        self.segments.contains(&Segment::Var(var))
    }

    pub fn render_into(&self, vars: &dyn VarSource, out: &mut String) {
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Var(var) => vars.write_var(*var, out),
            }
        }
    }

    pub fn render(&self, vars: &dyn VarSource) -> String {
        let mut out = String::with_capacity(128);
        self.render_into(vars, &mut out);
        out
    }
}

/// Several wordings of one reply; a conversation rotates through them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variants(Vec<Template>);

impl Variants {
    /// Builds variants; `None` when there are none, which callers report as an error.
    pub fn new(templates: Vec<Template>) -> Option<Variants> {
        (!templates.is_empty()).then_some(Variants(templates))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The variant that follows `previous` (the one sent last time), or the first.
    pub fn next_after(&self, previous: Option<usize>) -> (usize, &Template) {
        let index = previous.map_or(0, |p| (p + 1) % self.0.len());
        (index, &self.0[index])
    }

    /// Like `next_after`, skipping variants not valid at `now`; `None` when none is.
    pub fn next_valid_after(
        &self,
        previous: Option<usize>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<(usize, &Template)> {
        let start = previous.map_or(0, |p| p + 1);
        (0..self.0.len())
            .map(|step| (start + step) % self.0.len())
            .map(|index| (index, &self.0[index]))
            .find(|(_, template)| template.validity.contains(now))
    }

    /// True when at least one variant may be sent at `now`.
    pub fn any_valid(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        self.0.iter().any(|t| t.validity.contains(now))
    }

    /// Sets each variant's validity, in order.
    pub fn with_validity(mut self, validity: impl IntoIterator<Item = Validity>) -> Variants {
        for (template, validity) in self.0.iter_mut().zip(validity) {
            template.validity = validity;
        }
        self
    }

    pub fn get(&self, index: usize) -> &Template {
        &self.0[index % self.0.len()]
    }

    pub fn iter(&self) -> impl Iterator<Item = &Template> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl VarSource for Fixed {
        fn write_var(&self, var: Var, out: &mut String) {
            out.push_str(match var {
                Var::Shop => "小店",
                Var::Days => "1-2",
                _ => "?",
            });
        }
    }

    #[test]
    fn renders_variables_and_literal_braces() {
        let t = Template::parse("欢迎光临{shop}，{{原样}}，{ days }天").unwrap();
        assert_eq!(t.render(&Fixed), "欢迎光临小店，{原样}，1-2天");
        assert!(t.uses(Var::Days));
        assert!(!t.uses(Var::Agent));
    }

    #[test]
    fn unknown_and_unclosed_variables_are_errors_with_offsets() {
        let e = Template::parse("您好{nmae}").unwrap_err();
        assert_eq!(e.offset, "您好".len());
        assert!(e.message.contains("`{nmae}`"), "{}", e.message);
        assert!(Template::parse("您好{shop").is_err());
        assert!(Template::parse("您好}").is_err());
    }

    #[test]
    fn variants_rotate_without_repeating() {
        let v = Variants::new(vec![
            Template::parse("a").unwrap(),
            Template::parse("b").unwrap(),
        ])
        .unwrap();
        assert_eq!(v.next_after(None).0, 0);
        assert_eq!(v.next_after(Some(0)).0, 1);
        assert_eq!(v.next_after(Some(1)).0, 0);
    }
}
