//! oslo-style INI configuration files, as Glance's operators already write them: sections,
//! `option = value`, comments, continuation lines, repeated options, several files where a later
//! one wins. Parsing only; what each option means belongs to the daemon or store that reads it.

pub mod daemon;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A configuration problem, with the file, section and option it concerns in the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// One parsed oslo INI file set: `section → option → values` (repeated keys keep every value;
/// later files override earlier ones option by option). Section names are kept as written,
/// except `DEFAULT`.
#[derive(Debug, Default, Clone)]
pub struct IniSet {
    values: BTreeMap<(String, String), (Vec<String>, PathBuf)>,
}

impl IniSet {
    /// Reads files in order; a later file's value for an option replaces an earlier one's.
    pub fn load(paths: &[PathBuf]) -> Result<Self, ConfigError> {
        let mut set = Self::default();
        for path in paths {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!("cannot read config file {}: {e}", path.display()))
            })?;
            set.merge(path, &text)?;
        }
        Ok(set)
    }

    /// Parses one file's text: `[section]`, `key = value`, `#`/`;` comments, indented
    /// continuation lines, repeated keys (oslo MultiStrOpt).
    pub fn merge(&mut self, path: &Path, text: &str) -> Result<(), ConfigError> {
        let mut section: Option<String> = None;
        let mut file_values: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        let mut last: Option<(String, String)> = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim_end();
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if line.starts_with([' ', '\t'])
                && let Some(v) = last
                    .as_ref()
                    .and_then(|key| file_values.get_mut(key))
                    .and_then(|v| v.last_mut())
            {
                v.push('\n');
                v.push_str(trimmed);
                continue;
            }
            if let Some(name) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                section = Some(name.trim().to_string());
                last = None;
                continue;
            }
            let bad = |why: &str| ConfigError(format!("{}:{}: {why}", path.display(), n + 1));
            let Some(sec) = &section else {
                return Err(bad("option outside any [section]"));
            };
            let Some((k, v)) = trimmed.split_once(['=', ':']) else {
                return Err(bad("expected 'option = value'"));
            };
            let key = (sec.clone(), k.trim().to_string());
            file_values
                .entry(key.clone())
                .or_default()
                .push(v.trim().to_string());
            last = Some(key);
        }
        for (k, v) in file_values {
            self.values.insert(k, (v, path.to_path_buf()));
        }
        Ok(())
    }

    /// The last value of an option, if set.
    pub fn get(&self, section: &str, option: &str) -> Option<&str> {
        self.values
            .get(&(section.to_string(), option.to_string()))
            .and_then(|(v, _)| v.last())
            .map(String::as_str)
    }

    /// Every value of a repeated (MultiStr) option, in file order.
    pub fn get_all(&self, section: &str, option: &str) -> Vec<&str> {
        self.values
            .get(&(section.to_string(), option.to_string()))
            .map(|(v, _)| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Whether any option was set in `section`.
    pub fn has_section(&self, section: &str) -> bool {
        self.values.keys().any(|(s, _)| s == section)
    }

    /// The file that set an option, for messages.
    pub fn source(&self, section: &str, option: &str) -> Option<&Path> {
        self.values
            .get(&(section.to_string(), option.to_string()))
            .map(|(_, p)| p.as_path())
    }

    /// Parses an option with `parse`, naming file, section and option on failure.
    pub fn parse<T>(
        &self,
        section: &str,
        option: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let Some((values, file)) = self.values.get(&(section.to_string(), option.to_string()))
        else {
            return Ok(None);
        };
        let Some(raw) = values.last() else {
            return Ok(None);
        };
        parse(raw).map(Some).map_err(|why| {
            ConfigError(format!(
                "{}: [{section}] {option} = {raw:?} is invalid: {why}",
                file.display()
            ))
        })
    }

    /// The options set in `section`, sorted.
    pub fn options(&self, section: &str) -> Vec<String> {
        self.values
            .keys()
            .filter(|(s, _)| s == section)
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Options present in the files but not in `known`, as `[section] option`.
    pub fn unknown(&self, known: &[(&str, &str)], known_sections: &[&str]) -> Vec<String> {
        let known: BTreeSet<(&str, &str)> = known.iter().copied().collect();
        self.values
            .keys()
            .filter(|(s, o)| {
                !known.contains(&(s.as_str(), o.as_str())) && !known_sections.contains(&s.as_str())
            })
            .map(|(s, o)| format!("[{s}] {o}"))
            .collect()
    }
}

/// Parses an oslo boolean.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

/// Parses an unsigned integer within bounds.
pub fn parse_u32_in(min: u32, max: u32) -> impl Fn(&str) -> Result<u32, String> {
    move |s| {
        s.parse::<u32>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| format!("expected an integer from {min} to {max}"))
    }
}

/// Parses an oslo list option: comma-separated, blanks trimmed, empties dropped.
pub fn parse_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses an unsigned 64-bit integer.
pub fn parse_u64(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<u64>()
        .map_err(|_| "expected a non-negative integer".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_files_win_and_continuations_join() {
        let mut ini = IniSet::default();
        ini.merge(
            Path::new("a.conf"),
            "[DEFAULT]\nbind_port = 1\nworkers = 2\n",
        )
        .unwrap();
        ini.merge(
            Path::new("b.conf"),
            "[DEFAULT]\nbind_port = 3\nx = a\n  b\n",
        )
        .unwrap();
        assert_eq!(ini.get("DEFAULT", "bind_port"), Some("3"));
        assert_eq!(ini.get("DEFAULT", "workers"), Some("2"));
        assert_eq!(ini.get("DEFAULT", "x"), Some("a\nb"));
    }

    #[test]
    fn malformed_lines_are_reported_with_line_numbers() {
        let mut ini = IniSet::default();
        let err = ini
            .merge(Path::new("x.conf"), "bind_port = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.conf:1"), "{err}");
        let err = ini
            .merge(Path::new("y.conf"), "[DEFAULT]\njunk\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("y.conf:2"), "{err}");
    }

    #[test]
    fn repeated_options_keep_every_value() {
        let mut ini = IniSet::default();
        ini.merge(
            Path::new("api.conf"),
            "[glance_store]\nfilesystem_store_datadirs = /a:100\nfilesystem_store_datadirs = /b:200\n",
        )
        .unwrap();
        assert_eq!(
            ini.get_all("glance_store", "filesystem_store_datadirs"),
            vec!["/a:100", "/b:200"]
        );
        assert!(ini.has_section("glance_store"));
        assert!(!ini.has_section("file"));
        assert_eq!(parse_list(" file, http ,,"), vec!["file", "http"]);
    }
}
