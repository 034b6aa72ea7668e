//! The policy language's words: splitting a rule's text into parentheses, `and` / `or` / `not`
//! and checks the way oslo.policy does, and reading each `kind:match` check (its literal or
//! credential on the left, its `%(key)s` template on the right). It knows nothing of how the
//! words combine (`parser`) or of callers and targets (`eval`).

use super::rule::{Expr, Part, Subject, Template};

/// 1-based character column of byte offset `at`.
pub(super) fn column(text: &str, at: usize) -> usize {
    text.get(..at).map_or(at, |s| s.chars().count()) + 1
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    LParen,
    RParen,
    And,
    Or,
    Not,
    Check(Expr),
}

#[derive(Debug)]
pub(super) struct Token {
    pub(super) kind: Tok,
    /// Byte offsets of the token in the rule text.
    pub(super) at: usize,
    pub(super) end: usize,
}

impl Token {
    pub(super) fn text<'t>(&self, text: &'t str) -> &'t str {
        text.get(self.at..self.end).unwrap_or("")
    }
}

/// Splits a rule the way oslo does: on whitespace, with leading `(` and trailing `)` of each
/// word split off as parentheses. One extension: a word that starts with a quote runs to the
/// matching quote first, so a quoted literal may contain spaces (`'my value':%(name)s`).
pub(super) fn tokenize(text: &str) -> Result<Vec<Token>, (usize, String)> {
    let mut tokens = Vec::new();
    let mut i = 0;
    let char_at = |i: usize| text[i..].chars().next().unwrap_or(' ');
    while i < text.len() {
        let c = char_at(i);
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if c == '(' {
            tokens.push(Token {
                kind: Tok::LParen,
                at: i,
                end: i + 1,
            });
            i += 1;
            continue;
        }
        let start = i;
        if c == '\'' || c == '"' {
            i = closing_quote(text, start).ok_or((
                start,
                format!(
                    "unterminated quoted string at column {}",
                    column(text, start)
                ),
            ))?;
        }
        let quoted_end = i;
        while i < text.len() && !char_at(i).is_whitespace() {
            i += char_at(i).len_utf8();
        }
        let word_end = i;
        let mut body_end = word_end;
        while body_end > quoted_end.max(start) && text.as_bytes()[body_end - 1] == b')' {
            body_end -= 1;
        }
        let body = &text[start..body_end];
        if !body.is_empty() {
            let kind = match body.to_ascii_lowercase().as_str() {
                "and" => Tok::And,
                "or" => Tok::Or,
                "not" => Tok::Not,
                "@" => Tok::Check(Expr::Always),
                "!" => Tok::Check(Expr::Never),
                _ => Tok::Check(parse_check(body, start)?),
            };
            tokens.push(Token {
                kind,
                at: start,
                end: body_end,
            });
        }
        for at in body_end..word_end {
            tokens.push(Token {
                kind: Tok::RParen,
                at,
                end: at + 1,
            });
        }
    }
    Ok(tokens)
}

/// Byte offset just past the quote matching the one at `start` (backslash escapes honoured).
fn closing_quote(text: &str, start: usize) -> Option<usize> {
    let mut chars = text[start..].char_indices();
    let (_, quote) = chars.next()?;
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            chars.next();
        } else if c == quote {
            return Some(start + i + c.len_utf8());
        }
    }
    None
}

/// Parses one `kind:match` check (not `@`/`!`) found at byte `offset` of the rule text.
pub(super) fn parse_check(body: &str, offset: usize) -> Result<Expr, (usize, String)> {
    let not_a_check = || {
        (
            offset,
            format!(
                "'{body}' is not a check (expected kind:match, '@', '!', 'and', 'or' or 'not')"
            ),
        )
    };
    let colon = if body.starts_with(['\'', '"']) {
        let end =
            closing_quote(body, 0).ok_or((offset, "unterminated quoted string".to_owned()))?;
        if !body[end..].starts_with(':') {
            return Err(if end == body.len() {
                (
                    offset,
                    format!("a quoted string on its own is not a check: {body}"),
                )
            } else {
                (
                    offset + end,
                    format!("expected ':' after the quoted literal {}", &body[..end]),
                )
            });
        }
        end
    } else {
        body.find(':').ok_or_else(not_a_check)?
    };
    let (kind, matched) = (&body[..colon], &body[colon + 1..]);
    let match_at = offset + colon + 1;
    if kind.is_empty() {
        return Err((offset, format!("'{body}' has nothing before its ':'")));
    }
    // oslo only splits parentheses off the ends of words, so `(a)or(b)` reads as one odd check
    // there. Refuse it: no kind, rule or role name contains a parenthesis.
    let stray_paren = || {
        (
            offset,
            format!(
                "'{body}' contains a parenthesis; separate parentheses, 'and', 'or' and 'not' \
                 from checks with spaces"
            ),
        )
    };
    let template = || {
        let t = Template::parse(matched).map_err(|(at, msg)| (match_at + at, msg))?;
        let paren = t
            .parts
            .iter()
            .any(|p| matches!(p, Part::Text(s) if s.contains(['(', ')'])));
        if paren { Err(stray_paren()) } else { Ok(t) }
    };
    let subject = literal(kind).map_err(|msg| (offset, msg))?;
    if matches!(&subject, Subject::Credential(k) if k.contains(['(', ')'])) {
        return Err(stray_paren());
    }
    Ok(match kind {
        "rule" if matched.is_empty() => {
            return Err((offset, "'rule:' must name a rule".to_owned()));
        }
        "rule" if matched.contains(['(', ')']) => return Err(stray_paren()),
        "rule" => Expr::Ref(matched.to_owned()),
        "role" => Expr::Role(template()?),
        "http" | "https" => Expr::Remote(body.to_owned()),
        _ => Expr::Generic {
            kind_text: kind.to_owned(),
            subject,
            expected: template()?,
        },
    })
}

/// Reads the left side of a generic check as oslo does with Python's `literal_eval`: quoted
/// strings, `True`, `False`, `None` and integers are values; anything else names a credential.
fn literal(kind: &str) -> Result<Subject, String> {
    if let Some(quote) = kind.chars().next().filter(|c| *c == '\'' || *c == '"') {
        let inner = kind
            .strip_prefix(quote)
            .and_then(|k| k.strip_suffix(quote))
            .filter(|_| kind.len() >= 2)
            .ok_or_else(|| format!("unterminated quoted string {kind}"))?;
        let mut value = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => value.push('\n'),
                    Some('t') => value.push('\t'),
                    Some(other) => value.push(other),
                    None => value.push('\\'),
                }
            } else {
                value.push(c);
            }
        }
        return Ok(Subject::Literal(value));
    }
    if matches!(kind, "True" | "False" | "None") {
        return Ok(Subject::Literal(kind.to_owned()));
    }
    let digits = kind.strip_prefix(['-', '+']).unwrap_or(kind);
    let is_int = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if is_int {
        let negative = kind.starts_with('-') && digits != "0";
        let value = if negative {
            format!("-{digits}")
        } else {
            digits.to_owned()
        };
        return Ok(Subject::Literal(value));
    }
    Ok(Subject::Credential(kind.to_owned()))
}

impl Template {
    /// Parses Python `%`-formatting as oslo applies it to a match: `%(key)s` and `%%`. On error,
    /// returns the byte offset of the bad `%` and the message.
    fn parse(raw: &str) -> Result<Self, (usize, String)> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = raw.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            match chars.next() {
                Some((_, '%')) => text.push('%'),
                Some((open, '(')) => {
                    let rest = &raw[open + 1..];
                    let Some(close) = rest.find(')') else {
                        return Err((
                            at,
                            format!("unclosed substitution '%({rest}': write %({rest})s"),
                        ));
                    };
                    let key = &rest[..close];
                    let after = open + 1 + close + 1;
                    if raw[after..].starts_with('s') {
                        if !text.is_empty() {
                            parts.push(Part::Text(std::mem::take(&mut text)));
                        }
                        parts.push(Part::Key(key.to_owned()));
                        // Skip the key, ')' and 's'.
                        while chars.peek().is_some_and(|&(i, _)| i <= after) {
                            chars.next();
                        }
                    } else {
                        return Err((
                            at,
                            format!("substitution '%({key})' must end in 's', as in %({key})s"),
                        ));
                    }
                }
                _ => {
                    return Err((
                        at,
                        "a '%' must start a %(name)s substitution or be doubled as %%".to_owned(),
                    ));
                }
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self {
            raw: raw.to_owned(),
            parts,
        })
    }
}
