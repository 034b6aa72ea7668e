//! From a rule's words to its expression: recursive descent with oslo.policy's precedence
//! (`not` over `and` over `or`), the old list-of-lists form, and the [`ParseError`] that names
//! the rule, the column and what is wrong. Words come from `lexer`; nothing here evaluates.

use super::MAX_DEPTH;
use super::lexer::{Tok, Token, column, parse_check, tokenize};
use super::rule::{Expr, Rule, and_of, or_of};

/// A rule that is not valid policy language. The message names the rule, says what is wrong and
/// where (1-based character column), and quotes the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy rule \"{rule}\": {message} in \"{text}\"")]
pub struct ParseError {
    /// The rule's name (`modify_image`).
    pub rule: String,
    /// The rule's text as written.
    pub text: String,
    /// 1-based character column of the problem within `text`.
    pub column: usize,
    /// What is wrong, including the column.
    pub message: String,
}

impl Rule {
    /// Parses one rule in the policy language. An empty (or all-blank) text allows everyone, as
    /// in oslo. `name` only labels errors.
    pub fn parse(name: &str, text: &str) -> Result<Self, ParseError> {
        let fail = |at: usize, message: String| ParseError {
            rule: name.to_owned(),
            text: text.to_owned(),
            column: column(text, at),
            message,
        };
        let tokens = tokenize(text).map_err(|(at, msg)| fail(at, msg))?;
        let expr = if tokens.is_empty() {
            Expr::Always
        } else {
            let mut parser = Parser {
                text,
                tokens: &tokens,
                pos: 0,
                depth: 0,
            };
            let expr = parser.or_expr().map_err(|(at, msg)| fail(at, msg))?;
            if let Some(tok) = tokens.get(parser.pos) {
                let col = column(text, tok.at);
                let msg = if tok.kind == Tok::RParen {
                    format!("unbalanced parenthesis: the ')' at column {col} has no matching '('")
                } else {
                    format!(
                        "expected 'and' or 'or' at column {col} before '{}'",
                        tok.text(text)
                    )
                };
                return Err(fail(tok.at, msg));
            }
            expr
        };
        Ok(Self {
            text: text.to_owned(),
            expr,
        })
    }

    /// Parses the old list-of-lists form: the rule passes when every check of any one inner list
    /// passes. An empty outer list allows everyone; a list whose inner lists are all empty allows
    /// no one (both as in oslo). Each string is a single check, not an expression.
    pub fn parse_list(name: &str, alternatives: &[Vec<String>]) -> Result<Self, ParseError> {
        let mut any = Vec::new();
        for all in alternatives.iter().filter(|all| !all.is_empty()) {
            let mut checks = Vec::new();
            for check in all {
                let fail = |at: usize, message: String| ParseError {
                    rule: name.to_owned(),
                    text: check.clone(),
                    column: column(check, at),
                    message,
                };
                let trimmed = check.trim();
                let offset = check.len() - check.trim_start().len();
                let expr = match trimmed {
                    "@" => Expr::Always,
                    "!" => Expr::Never,
                    _ => parse_check(trimmed, offset).map_err(|(at, msg)| fail(at, msg))?,
                };
                checks.push(expr);
            }
            any.push(and_of(checks));
        }
        let expr = if alternatives.is_empty() {
            Expr::Always
        } else if any.is_empty() {
            Expr::Never
        } else {
            or_of(any)
        };
        let text = expr.to_string();
        Ok(Self { text, expr })
    }
}

/// Recursive descent: `or` over `and` over `not` over atoms.
struct Parser<'a> {
    text: &'a str,
    tokens: &'a [Token],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.kind)
    }

    fn or_expr(&mut self) -> Result<Expr, (usize, String)> {
        let mut items = vec![self.and_expr()?];
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            items.push(self.and_expr()?);
        }
        Ok(or_of(items))
    }

    fn and_expr(&mut self) -> Result<Expr, (usize, String)> {
        let mut items = vec![self.not_expr()?];
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            items.push(self.not_expr()?);
        }
        Ok(and_of(items))
    }

    fn not_expr(&mut self) -> Result<Expr, (usize, String)> {
        if self.peek() == Some(&Tok::Not) {
            self.enter()?;
            self.pos += 1;
            let inner = self.not_expr()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.atom()
    }

    fn enter(&mut self) -> Result<(), (usize, String)> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let at = self.tokens.get(self.pos).map_or(0, |t| t.at);
            return Err((
                at,
                format!(
                    "nested more than {MAX_DEPTH} levels deep at column {}",
                    column(self.text, at)
                ),
            ));
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<Expr, (usize, String)> {
        let Some(tok) = self.tokens.get(self.pos) else {
            let end = self.text.trim_end().len();
            let prev = self
                .pos
                .checked_sub(1)
                .and_then(|p| self.tokens.get(p))
                .map_or("", |t| t.text(self.text));
            return Err((
                end,
                format!(
                    "expected a check after '{prev}' at column {}, found the end of the rule",
                    column(self.text, end)
                ),
            ));
        };
        let col = column(self.text, tok.at);
        match &tok.kind {
            Tok::Check(expr) => {
                self.pos += 1;
                Ok(expr.clone())
            }
            Tok::LParen => {
                let open = tok.at;
                self.enter()?;
                self.pos += 1;
                if self.peek() == Some(&Tok::RParen) {
                    return Err((open, format!("empty parentheses at column {col}")));
                }
                let inner = self.or_expr()?;
                match self.tokens.get(self.pos) {
                    None => Err((
                        open,
                        format!("unbalanced parenthesis: the '(' at column {col} is never closed"),
                    )),
                    Some(t) if t.kind == Tok::RParen => {
                        self.pos += 1;
                        self.depth -= 1;
                        Ok(inner)
                    }
                    Some(t) => Err((
                        t.at,
                        format!(
                            "expected 'and', 'or' or ')' at column {} before '{}'",
                            column(self.text, t.at),
                            t.text(self.text)
                        ),
                    )),
                }
            }
            Tok::RParen | Tok::And | Tok::Or | Tok::Not => Err((
                tok.at,
                format!(
                    "expected a check at column {col}, found '{}'",
                    tok.text(self.text)
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy_engine::test_support::*;
    use crate::policy_engine::*;

    // --- errors ----------------------------------------------------------------------------

    #[test]
    fn unclosed_parenthesis_is_named() {
        let e = err("role:admin or (role:member and project_id:%(project_id)s");
        assert_eq!(e.rule, "modify_image");
        assert_eq!(e.column, 15);
        let msg = e.to_string();
        assert!(
            msg.starts_with("policy rule \"modify_image\": unbalanced parenthesis"),
            "{msg}"
        );
        assert!(msg.contains("column 15"), "{msg}");
        assert!(msg.contains("role:admin or (role:member"), "{msg}");
    }

    #[test]
    fn stray_close_parenthesis() {
        let e = err("role:admin) or role:member");
        assert!(e.message.contains("unbalanced parenthesis"), "{e}");
        assert!(e.message.contains("no matching '('"), "{e}");
        assert_eq!(e.column, 11);
    }

    #[test]
    fn missing_operands() {
        let e = err("role:admin or");
        assert!(e.message.contains("after 'or'"), "{e}");
        assert!(e.message.contains("end of the rule"), "{e}");
        let e = err("and role:admin");
        assert!(e.message.contains("found 'and'"), "{e}");
        let e = err("role:a and or role:b");
        assert_eq!(e.column, 12);
        let e = err("not");
        assert!(e.message.contains("after 'not'"), "{e}");
        let e = err("()");
        assert!(e.message.contains("empty parentheses"), "{e}");
    }

    #[test]
    fn adjacent_checks_need_an_operator() {
        let e = err("role:a role:b");
        assert!(e.message.contains("expected 'and' or 'or'"), "{e}");
        assert_eq!(e.column, 8);
        let e = err("(role:a role:b)");
        assert!(e.message.contains("expected 'and', 'or' or ')'"), "{e}");
    }

    #[test]
    fn malformed_checks() {
        assert!(err("admin").message.contains("is not a check"));
        assert!(err(":admin").message.contains("nothing before"));
        assert!(err("rule:").message.contains("must name a rule"));
        assert!(err("'public'").message.contains("on its own"));
        assert!(
            err("'public:%(visibility)s")
                .message
                .contains("unterminated")
        );
        assert!(
            err("'public'x:%(visibility)s")
                .message
                .contains("expected ':'")
        );
        // oslo splits the trailing ')' off as a parenthesis, so this is an unclosed substitution.
        let e = err("role:admin or project_id:%(owner)");
        assert!(e.message.contains("unclosed substitution '%(owner'"), "{e}");
        assert_eq!(e.column, 26);
        assert!(
            err("project_id:%(owner)d")
                .message
                .contains("must end in 's'")
        );
        assert!(err("project_id:100%").message.contains("'%'"));
        // The mid-word parentheses oslo cannot read either are an error here, not a silent deny.
        assert!(err("(role:a)or(role:b)").message.contains("parenthesis"));
        assert!(err("role:a and(role:b)").message.contains("parenthesis"));
    }

    #[test]
    fn nesting_limit() {
        let deep = format!("{}@{}", "(".repeat(200), ")".repeat(200));
        assert!(err(&deep).message.contains("nested more than"));
        let nots = format!("{}@", "not ".repeat(200));
        assert!(err(&nots).message.contains("nested more than"));
        let fine = format!("{}@{}", "(".repeat(50), ")".repeat(50));
        assert!(eval(&fine, &nobody(), &Target::new()));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let e = err("'é':%(x)s (");
        assert_eq!(e.column, 11);
    }

    // --- list-of-lists form -----------------------------------------------------------------

    #[test]
    fn list_form_is_or_of_ands() {
        let c = Credentials::project("p1", &["member"]);
        let t = Target::new().with("owner", "p1");
        let yes = Rule::parse_list(
            "x",
            &[
                vec!["role:admin".into()],
                vec!["role:member".into(), "project_id:%(owner)s".into()],
            ],
        )
        .unwrap();
        assert_eq!(
            yes.to_string(),
            "role:admin or role:member and project_id:%(owner)s"
        );
        let mut p = Policy::empty();
        p.rules.insert("x".into(), yes);
        assert!(p.enforce("x", &c, &t));
        assert!(!p.enforce("x", &c, &Target::new().with("owner", "p2")));
        // Empty outer list: always; only empty inner lists: never.
        assert_eq!(Rule::parse_list("e", &[]).unwrap().expr, Expr::Always);
        assert_eq!(Rule::parse_list("e", &[vec![]]).unwrap().expr, Expr::Never);
        let e = Rule::parse_list("bad", &[vec!["nocolon".into()]]).unwrap_err();
        assert_eq!(e.rule, "bad");
    }
}
