//! A parsed policy rule: the expression tree ([`Expr`]) one rule's text becomes, the templates
//! on the right of its checks, and how a rule is written back in the policy language. It owns the
//! shape of a rule, not how text becomes one (`lexer`, `parser`) nor what a rule answers (`eval`).

use std::collections::BTreeSet;
use std::fmt;

/// One parsed policy rule, ready to evaluate. `Display` writes it back in the policy language
/// (normalised: `and`/`or` chains flattened, parentheses only where needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub(super) text: String,
    pub(super) expr: Expr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr {
    Always,
    Never,
    /// `role:<template>`: the caller holds the role (case-insensitive).
    Role(Template),
    /// `rule:<name>`: another rule of the policy; false when undefined.
    Ref(String),
    /// `kind:<template>` for any other kind. `kind_text` is the kind as written.
    Generic {
        kind_text: String,
        subject: Subject,
        expected: Template,
    },
    /// `http:` / `https:` remote checks (oslo POSTs to the URL); never allowed here.
    Remote(String),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// The left side of a generic check: a literal value or a credential field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Subject {
    Literal(String),
    Credential(String),
}

/// The right side of a check: text with `%(key)s` holes filled from the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Template {
    pub(super) raw: String,
    pub(super) parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Part {
    Text(String),
    Key(String),
}

impl Rule {
    /// The rule as it was written (for the list form: its rendering in the policy language).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Names of the rules this one refers to with `rule:`.
    pub fn references(&self) -> BTreeSet<&str> {
        let mut out = BTreeSet::new();
        self.expr.references(&mut out);
        out
    }

    pub(super) fn has_remote_check(&self) -> bool {
        self.expr.any(&|e| matches!(e, Expr::Remote(_)))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)
    }
}

pub(super) fn and_of(mut items: Vec<Expr>) -> Expr {
    if items.len() == 1 {
        return items.remove(0);
    }
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Expr::And(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    Expr::And(flat)
}

pub(super) fn or_of(mut items: Vec<Expr>) -> Expr {
    if items.len() == 1 {
        return items.remove(0);
    }
    let mut flat = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Expr::Or(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    Expr::Or(flat)
}

impl Expr {
    fn references<'a>(&'a self, out: &mut BTreeSet<&'a str>) {
        match self {
            Self::Ref(name) => {
                out.insert(name);
            }
            Self::Not(inner) => inner.references(out),
            Self::And(items) | Self::Or(items) => items.iter().for_each(|e| e.references(out)),
            _ => {}
        }
    }

    fn any(&self, pred: &dyn Fn(&Expr) -> bool) -> bool {
        pred(self)
            || match self {
                Self::Not(inner) => inner.any(pred),
                Self::And(items) | Self::Or(items) => items.iter().any(|e| e.any(pred)),
                _ => false,
            }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Parenthesise an operand only when its operator binds more loosely than the context.
        fn operand(f: &mut fmt::Formatter<'_>, e: &Expr, parent_and: bool) -> fmt::Result {
            let needs = matches!(e, Expr::Or(_)) || (!parent_and && matches!(e, Expr::And(_)));
            if needs {
                write!(f, "({e})")
            } else {
                write!(f, "{e}")
            }
        }
        match self {
            Self::Always => f.write_str("@"),
            Self::Never => f.write_str("!"),
            Self::Role(t) => write!(f, "role:{}", t.raw),
            Self::Ref(name) => write!(f, "rule:{name}"),
            Self::Generic {
                kind_text,
                expected,
                ..
            } => write!(f, "{kind_text}:{}", expected.raw),
            Self::Remote(text) => f.write_str(text),
            Self::Not(inner) => {
                f.write_str("not ")?;
                match **inner {
                    Self::And(_) | Self::Or(_) => write!(f, "({inner})"),
                    _ => write!(f, "{inner}"),
                }
            }
            Self::And(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    operand(f, item, true)?;
                }
                Ok(())
            }
            Self::Or(items) => {
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    // An `and` inside an `or` needs no parentheses; a nested `or` was flattened.
                    write!(f, "{item}")?;
                }
                Ok(())
            }
        }
    }
}
