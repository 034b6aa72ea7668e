//! Property protections (`property_protection_file`, `property_protection_rule_format`): who
//! may create, read, update and delete each custom image property, by the first section of
//! the file whose regular expression is found in the property's name. It owns the file's
//! format and the per-property decision; the routes apply it (403 on create, update and
//! delete, unreadable properties left out of every image shown). It knows nothing of the
//! base attributes (name, visibility, ...), which it never rules, as in Glance.
//!
//! The file is an INI file, as Glance reads it: a section per regular expression, each with
//! `create`, `read`, `update` and `delete` (all four are required; an empty value lets nobody).
//! With `roles`, a value is a comma-separated list of roles (any one suffices); with
//! `policies`, it is the name of one rule of the policy. In both, `@` lets everyone and `!`
//! nobody. A property no section matches is refused every operation. As in Glance, a rule
//! letting everyone do everything to `os_glance*` properties comes before the file's sections.
//!
//! Refused at start-up, with the line: a bad regular expression, a section twice, an
//! operation missing or unknown, `@`/`!` mixed with each other or with role names, several
//! policy names for one operation, a policy name the policy does not define.

use std::collections::BTreeMap;
use std::path::Path;

use glance_model::Context;
use regex::Regex;

/// `property_protection_rule_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleFormat {
    /// Values are role lists.
    #[default]
    Roles,
    /// Values are names of policy rules.
    Policies,
}

impl RuleFormat {
    /// Parses the option (case-insensitive, as Glance).
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "roles" => Ok(Self::Roles),
            "policies" => Ok(Self::Policies),
            _ => Err("expected roles or policies".to_string()),
        }
    }
}

/// One of the four operations on a property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Adding a property the caller cannot see yet.
    Create,
    /// Seeing it in an image.
    Read,
    /// Changing the value of one the caller sees.
    Update,
    /// Removing it.
    Delete,
}

impl Op {
    const ALL: [Op; 4] = [Op::Create, Op::Read, Op::Update, Op::Delete];

    /// The operation's name in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Read => "read",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Who may perform one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Permission {
    /// `@`.
    Anyone,
    /// `!`, or an empty value.
    Nobody,
    /// Any of these roles (lower-cased).
    Roles(Vec<String>),
    /// The policy rule of this name.
    Policy(String),
}

#[derive(Debug, Clone)]
struct Section {
    name: String,
    pattern: Regex,
    ops: [Permission; 4],
}

/// The protections in force.
#[derive(Debug, Clone)]
pub struct PropertyProtections {
    sections: Vec<Section>,
}

/// A section's options: operation name to (line, value).
type Options = BTreeMap<String, (usize, String)>;

/// A line of the file: section header or option.
enum Line<'a> {
    Section(&'a str),
    Option(String, String),
}

/// Splits `text` as Python's ConfigParser does: `#`/`;` comment lines, `[section]`,
/// `key = value` or `key: value` (keys lower-cased), indented lines continuing a value.
fn lines(text: &str) -> Result<Vec<(usize, Line<'_>)>, String> {
    let mut out: Vec<(usize, Line<'_>)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        if indented && let Some((_, Line::Option(_, value))) = out.last_mut() {
            value.push('\n');
            value.push_str(line);
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let end = rest
                .rfind(']')
                .ok_or_else(|| format!("line {n}: {line:?} opens a section but has no ']'"))?;
            let name = &rest[..end];
            if name.is_empty() {
                return Err(format!("line {n}: a section needs a name"));
            }
            out.push((n, Line::Section(name)));
            continue;
        }
        let split = line
            .find(['=', ':'])
            .ok_or_else(|| format!("line {n}: {line:?} is neither [section] nor key = value"))?;
        let key = line[..split].trim().to_ascii_lowercase();
        let value = line[split + 1..].trim().to_string();
        out.push((n, Line::Option(key, value)));
    }
    Ok(out)
}

/// The permission one value gives, in `format`; `is_rule` says whether the policy defines
/// a rule name.
fn permission(
    value: &str,
    format: RuleFormat,
    is_rule: &dyn Fn(&str) -> bool,
) -> Result<Permission, String> {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let anyone = items.contains(&"@");
    let nobody = items.contains(&"!");
    if anyone && nobody {
        return Err("'@' (everyone) and '!' (no one) cannot both be given".to_string());
    }
    if (anyone || nobody) && items.len() > 1 {
        return Err(format!(
            "{value:?} mixes '{}' with other entries; give it alone",
            if anyone { "@" } else { "!" }
        ));
    }
    match items.as_slice() {
        [] => Ok(Permission::Nobody),
        ["@"] => Ok(Permission::Anyone),
        ["!"] => Ok(Permission::Nobody),
        _ if format == RuleFormat::Roles => Ok(Permission::Roles(
            items.iter().map(|r| r.to_ascii_lowercase()).collect(),
        )),
        [rule] => {
            if is_rule(rule) {
                Ok(Permission::Policy((*rule).to_string()))
            } else {
                Err(format!(
                    "the policy defines no rule named {rule:?}; define it in the policy file \
                     or name another"
                ))
            }
        }
        _ => Err(format!(
            "{value:?} names several policy rules; name one (combine them in the policy file)"
        )),
    }
}

impl PropertyProtections {
    /// Reads the file at `path`; errors name the file and the line.
    pub fn load(
        path: &Path,
        format: RuleFormat,
        is_rule: &dyn Fn(&str) -> bool,
    ) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("property_protection_file {}: {e}", path.display()))?;
        Self::parse(&text, format, is_rule)
            .map_err(|e| format!("property_protection_file {}: {e}", path.display()))
    }

    /// Parses the file's text (see the module's documentation).
    pub fn parse(
        text: &str,
        format: RuleFormat,
        is_rule: &dyn Fn(&str) -> bool,
    ) -> Result<Self, String> {
        // Options by section, in file order, with the line each starts on.
        let mut found: Vec<(usize, &str, Options)> = Vec::new();
        let mut defaults = Options::new();
        let mut in_default = false;
        for (n, line) in lines(text)? {
            match line {
                Line::Section("DEFAULT") => in_default = true,
                Line::Section(name) => {
                    in_default = false;
                    if let Some((first, _, _)) = found.iter().find(|(_, s, _)| *s == name) {
                        return Err(format!(
                            "line {n}: section [{name}] was already given on line {first}"
                        ));
                    }
                    found.push((n, name, BTreeMap::new()));
                }
                Line::Option(key, value) => {
                    let (section, options) = match found.last_mut() {
                        _ if in_default => ("DEFAULT", &mut defaults),
                        Some((_, name, options)) => (*name, options),
                        None => {
                            return Err(format!(
                                "line {n}: {key} comes before any [section] naming the \
                                 properties it protects"
                            ));
                        }
                    };
                    if !Op::ALL.iter().any(|op| op.as_str() == key) {
                        return Err(format!(
                            "line {n}, section [{section}]: unknown operation {key:?}; the \
                             operations are create, read, update and delete"
                        ));
                    }
                    if let Some((first, _)) = options.get(&key) {
                        return Err(format!(
                            "line {n}, section [{section}]: {key} was already given on line \
                             {first}"
                        ));
                    }
                    options.insert(key, (n, value));
                }
            }
        }
        let mut sections = vec![Section {
            // Glance's own properties stay usable whatever the file says.
            name: "os_glance.*".to_string(),
            pattern: Regex::new("os_glance.*").map_err(|e| e.to_string())?,
            ops: [const { Permission::Anyone }; 4],
        }];
        for (n, name, options) in found {
            if name.starts_with("os_glance") {
                // Glance drops the file's own os_glance sections in favour of its rule.
                continue;
            }
            let pattern = Regex::new(name).map_err(|e| {
                format!("line {n}: section [{name}] is not a valid regular expression: {e}")
            })?;
            let mut ops = [const { Permission::Nobody }; 4];
            for op in Op::ALL {
                let (line, value) = options
                    .get(op.as_str())
                    .or_else(|| defaults.get(op.as_str()))
                    .ok_or_else(|| {
                        format!(
                            "line {n}, section [{name}]: no {} operation; give all four of \
                             create, read, update and delete (an empty value lets no one)",
                            op.as_str()
                        )
                    })?;
                if value.trim().is_empty() {
                    log::warn!(
                        "property protections: section [{name}] lets no one {} matching \
                         properties (its value is empty)",
                        op.as_str()
                    );
                }
                ops[op.index()] = permission(value, format, is_rule)
                    .map_err(|e| format!("line {line}, section [{name}], {}: {e}", op.as_str()))?;
            }
            sections.push(Section {
                name: name.to_string(),
                pattern,
                ops,
            });
        }
        Ok(Self { sections })
    }

    /// Whether `ctx` may perform `op` on the property `name`; `rule_allows` judges a policy
    /// rule for the caller.
    pub fn allows(
        &self,
        name: &str,
        op: Op,
        ctx: &Context,
        rule_allows: &dyn Fn(&str) -> bool,
    ) -> bool {
        let Some(section) = self.sections.iter().find(|s| s.pattern.is_match(name)) else {
            return false;
        };
        let allowed = match &section.ops[op.index()] {
            Permission::Anyone => true,
            Permission::Nobody => false,
            Permission::Roles(roles) => ctx
                .roles
                .iter()
                .any(|r| roles.iter().any(|x| x.eq_ignore_ascii_case(r))),
            Permission::Policy(rule) => rule_allows(rule),
        };
        if !allowed {
            log::debug!(
                "property protections: {} of {name:?} refused by section [{}]",
                op.as_str(),
                section.name
            );
        }
        allowed
    }

    /// The number of sections read from the file.
    pub fn len(&self) -> usize {
        self.sections.len() - 1
    }

    /// Whether the file had no section (then every property but Glance's own is refused).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(text: &str) -> Result<PropertyProtections, String> {
        PropertyProtections::parse(text, RuleFormat::Roles, &|_| false)
    }

    fn ctx(roles: &[&str]) -> Context {
        Context::project("p", roles)
    }

    const FILE: &str = "# protections\n[^x_admin_]\ncreate = admin\nread = admin, Member\n\
        update = !\ndelete =\n\n[.*]\ncreate = @\nread : @\nupdate = @\ndelete = @\n";

    #[test]
    fn first_matching_section_rules_each_operation() {
        let p = roles(FILE).unwrap();
        assert_eq!(p.len(), 2);
        let no_rule = |_: &str| false;
        let admin = ctx(&["admin"]);
        let member = ctx(&["member"]);
        assert!(p.allows("x_admin_a", Op::Create, &admin, &no_rule));
        assert!(!p.allows("x_admin_a", Op::Create, &member, &no_rule));
        assert!(
            p.allows("x_admin_a", Op::Read, &member, &no_rule),
            "roles ignore case"
        );
        assert!(
            !p.allows("x_admin_a", Op::Update, &admin, &no_rule),
            "! is no one"
        );
        assert!(
            !p.allows("x_admin_a", Op::Delete, &admin, &no_rule),
            "empty is no one"
        );
        assert!(p.allows("anything", Op::Delete, &member, &no_rule));
        assert!(p.allows("os_glance_x", Op::Update, &member, &no_rule));
        let only = roles("[^a$]\ncreate = @\nread = @\nupdate = @\ndelete = @\n").unwrap();
        assert!(
            !only.allows("b", Op::Read, &admin, &no_rule),
            "no section: refused"
        );
        // A search, not a full match, as Python's re.search.
        let p = roles("[foo]\ncreate = @\nread = @\nupdate = @\ndelete = @\n").unwrap();
        assert!(p.allows("xfooy", Op::Read, &member, &no_rule));
    }

    #[test]
    fn default_section_and_continuation_lines() {
        let p =
            roles("[DEFAULT]\ndelete = !\n[.*]\ncreate = admin,\n  member\nread = @\nupdate = @\n")
                .unwrap();
        let no_rule = |_: &str| false;
        assert!(p.allows("k", Op::Create, &ctx(&["member"]), &no_rule));
        assert!(!p.allows("k", Op::Delete, &ctx(&["admin"]), &no_rule));
    }

    #[test]
    fn policies_name_rules_of_the_policy() {
        let text = "[^x_]\ncreate = can_create\nread = @\nupdate = !\ndelete = can_create\n";
        let is_rule = |r: &str| r == "can_create";
        let p = PropertyProtections::parse(text, RuleFormat::Policies, &is_rule).unwrap();
        let c = ctx(&["member"]);
        assert!(p.allows("x_a", Op::Create, &c, &|r| r == "can_create"));
        assert!(!p.allows("x_a", Op::Create, &c, &|_| false));
        assert!(p.allows("x_a", Op::Read, &c, &|_| false));
        assert!(!p.allows("x_a", Op::Update, &c, &|_| true));
        let err = PropertyProtections::parse(
            &text.replace("delete = can_create", "delete = nope"),
            RuleFormat::Policies,
            &is_rule,
        )
        .unwrap_err();
        assert!(
            err.contains("line 5, section [^x_], delete") && err.contains("\"nope\""),
            "{err}"
        );
        let err = PropertyProtections::parse(
            &text.replace("delete = can_create", "delete = can_create, other"),
            RuleFormat::Policies,
            &is_rule,
        )
        .unwrap_err();
        assert!(err.contains("several policy rules"), "{err}");
    }

    #[test]
    fn the_shipped_sample_parses() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../etc/property-protections.conf"
        );
        let p = PropertyProtections::load(Path::new(path), RuleFormat::Roles, &|_| false).unwrap();
        assert_eq!(p.len(), 3);
        let no_rule = |_: &str| false;
        assert!(!p.allows("billing_code", Op::Update, &ctx(&["admin"]), &no_rule));
        assert!(!p.allows("x_ops_rack", Op::Read, &ctx(&["member"]), &no_rule));
        assert!(p.allows("os_distro", Op::Create, &ctx(&["member"]), &no_rule));
    }

    #[test]
    fn bad_files_name_the_line() {
        let all = "read = @\nupdate = @\ndelete = @\n";
        for (text, needle) in [
            (
                format!("[x(]\ncreate = @\n{all}"),
                "line 1: section [x(] is not a valid regular expression",
            ),
            (
                format!("[x]\ncreate = @\nmodify = @\n{all}"),
                "line 3, section [x]: unknown operation \"modify\"",
            ),
            (
                format!("[x]\n{all}"),
                "line 1, section [x]: no create operation",
            ),
            (
                format!("[x]\ncreate = @,!\n{all}"),
                "line 2, section [x], create: '@' (everyone) and '!'",
            ),
            (
                format!("[x]\ncreate = @, admin\n{all}"),
                "line 2, section [x], create: \"@, admin\" mixes '@'",
            ),
            (format!("[x]\ncreate = !,admin\n{all}"), "mixes '!'"),
            (
                format!("create = @\n[x]\n{all}"),
                "line 1: create comes before any [section]",
            ),
            (
                format!("[x]\ncreate = @\n{all}[x]\n"),
                "line 6: section [x] was already given on line 1",
            ),
            (
                format!("[x]\ncreate = @\ncreate = @\n{all}"),
                "line 3, section [x]: create was already given on line 2",
            ),
            (
                format!("[x]\ncreate\n{all}"),
                "line 2: \"create\" is neither",
            ),
            (
                format!("[x\ncreate = @\n{all}"),
                "line 1: \"[x\" opens a section",
            ),
        ] {
            let err = roles(&text).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        assert!(RuleFormat::parse("Policies").is_ok());
        assert!(RuleFormat::parse("groups").is_err());
    }
}
