//! `[outbound]`: how the numbers users dial out become E.164 (the national
//! dialling rule), which of them may go out (`deny`, `allow`), and which are
//! emergency numbers that always go out.
//!
//! Only the schema, its checks and the pure matching; which call goes where
//! is routing's (`routing::dial`), and placing it is the engine's.

use crate::directory::Errors;
use crate::{normalize_e164, E164};

/// `[outbound]` as written; every key optional.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundRulesSpec {
    /// `"+33"`: the country a national number (one starting with
    /// `national_prefix`) is in.
    pub country_code: Option<String>,
    /// `"0"`: the trunk prefix that starts a national number.
    pub national_prefix: Option<String>,
    pub deny: Option<Vec<String>>,
    pub allow: Option<Vec<String>>,
    pub emergency: Option<Vec<String>>,
}

/// The checked rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundRules {
    /// Digits of the country code, without `+` (`"33"`).
    pub country_code: Option<String>,
    pub national_prefix: Option<String>,
    /// Refused destinations (checked after normalisation).
    pub deny: Vec<NumberPattern>,
    /// When not empty, only these destinations go out.
    pub allow: Vec<NumberPattern>,
    /// Dialled as is; never refused.
    pub emergency: Vec<String>,
}

impl Default for OutboundRules {
    fn default() -> Self {
        OutboundRules {
            country_code: None,
            national_prefix: None,
            deny: Vec::new(),
            allow: Vec::new(),
            emergency: vec!["112".into(), "911".into()],
        }
    }
}

/// A destination pattern: an E.164 number, or a prefix of one when it ends
/// in `*` (`"+1900*"`). Spaces and other visual separators are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberPattern {
    /// As written in the file (logs and refusals name it so).
    pub text: String,
    /// `+` and digits.
    digits: String,
    prefix: bool,
}

impl NumberPattern {
    fn parse(text: &str) -> Option<NumberPattern> {
        let trimmed = text.trim();
        let (body, prefix) = match trimmed.strip_suffix('*') {
            Some(body) => (body, true),
            None => (trimmed, false),
        };
        let mut digits = String::with_capacity(body.len());
        for (i, c) in body.chars().enumerate() {
            match c {
                '+' if i == 0 => digits.push('+'),
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return None,
            }
        }
        if !digits.starts_with('+') || digits.len() < 2 {
            return None;
        }
        Some(NumberPattern {
            text: trimmed.to_string(),
            digits,
            prefix,
        })
    }

    /// Whether `e164` (normalised) is this pattern's number or starts with it.
    pub fn matches(&self, e164: &str) -> bool {
        if self.prefix {
            e164.starts_with(&self.digits)
        } else {
            e164 == self.digits
        }
    }
}

/// Why a destination may not be called.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Restriction<'a> {
    /// It matches this `deny` pattern.
    Denied(&'a NumberPattern),
    /// An `allow` list exists and it matches none of it.
    NotAllowed,
}

impl OutboundRules {
    /// Whether `dialled` (as dialled, separators ignored) is an emergency
    /// number.
    pub fn is_emergency(&self, dialled: &str) -> bool {
        let digits: String = dialled.chars().filter(|c| !is_separator(*c)).collect();
        self.emergency.contains(&digits)
    }

    /// `dialled` as E.164: international forms as [`normalize_e164`] reads
    /// them, and a national number (starting with `national_prefix`, not
    /// with `00`) with the prefix replaced by the country code.
    pub fn normalise(&self, dialled: &str) -> Option<E164> {
        let digits: String = dialled.chars().filter(|c| !is_separator(*c)).collect();
        if let (Some(cc), Some(prefix)) = (&self.country_code, &self.national_prefix) {
            if !digits.starts_with("00") && !digits.starts_with('+') {
                if let Some(national) = digits.strip_prefix(prefix.as_str()) {
                    return normalize_e164(&format!("+{cc}{national}"));
                }
            }
        }
        normalize_e164(&digits)
    }

    /// Whether `e164` may be called out: the first `deny` pattern it
    /// matches, else (with an `allow` list) whether the list names it.
    pub fn check(&self, e164: &str) -> Result<(), Restriction<'_>> {
        if let Some(p) = self.deny.iter().find(|p| p.matches(e164)) {
            return Err(Restriction::Denied(p));
        }
        if !self.allow.is_empty() && !self.allow.iter().any(|p| p.matches(e164)) {
            return Err(Restriction::NotAllowed);
        }
        Ok(())
    }
}

fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '.' | '(' | ')')
}

pub(crate) fn compile_outbound(spec: OutboundRulesSpec, errors: &mut Errors<'_>) -> OutboundRules {
    let mut rules = OutboundRules::default();
    let (has_country, has_prefix) = (spec.country_code.is_some(), spec.national_prefix.is_some());
    if let Some(cc) = spec.country_code {
        let digits = cc.strip_prefix('+').unwrap_or(&cc);
        if digits.is_empty()
            || digits.len() > 3
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            errors.push(
                "outbound.country_code",
                format!("`{cc}` is not a country code (such as \"+33\" or \"+1\")"),
            );
        } else {
            rules.country_code = Some(digits.to_string());
        }
    }
    if let Some(prefix) = spec.national_prefix {
        if prefix.is_empty() || prefix.len() > 4 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(
                "outbound.national_prefix",
                format!("`{prefix}` is not a national prefix (digits, such as \"0\")"),
            );
        } else {
            rules.national_prefix = Some(prefix);
        }
    }
    if has_country != has_prefix {
        let missing = if !has_country {
            "outbound.country_code"
        } else {
            "outbound.national_prefix"
        };
        errors.push(
            missing,
            "country_code and national_prefix go together (the national rule replaces the prefix by the country code)",
        );
    }
    rules.deny = patterns(spec.deny, "deny", errors);
    rules.allow = patterns(spec.allow, "allow", errors);
    if let Some(list) = spec.emergency {
        let mut emergency = Vec::with_capacity(list.len());
        for (i, number) in list.iter().enumerate() {
            let digits: String = number.chars().filter(|c| !is_separator(*c)).collect();
            if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                errors.push(
                    format!("outbound.emergency[{i}]"),
                    format!("`{number}` is not a short number of digits (such as \"112\")"),
                );
            } else {
                emergency.push(digits);
            }
        }
        rules.emergency = emergency;
    }
    rules
}

fn patterns(list: Option<Vec<String>>, key: &str, errors: &mut Errors<'_>) -> Vec<NumberPattern> {
    let mut out = Vec::new();
    for (i, text) in list.unwrap_or_default().iter().enumerate() {
        match NumberPattern::parse(text) {
            Some(p) => out.push(p),
            None => errors.push(
                format!("outbound.{key}[{i}]"),
                format!(
                    "`{text}` is not a number pattern (an E.164 number such as \"+33612345678\", \
                     or a prefix ending in *, such as \"+1900*\")"
                ),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> OutboundRules {
        let mut errors = Errors::new(std::path::Path::new("t.toml"));
        let rules = compile_outbound(
            OutboundRulesSpec {
                country_code: Some("+33".into()),
                national_prefix: Some("0".into()),
                deny: Some(vec!["+1900*".into(), "+44 9*".into()]),
                allow: None,
                emergency: Some(vec!["112".into(), "15".into()]),
            },
            &mut errors,
        );
        assert!(errors.is_empty());
        rules
    }

    #[test]
    fn national_numbers_take_the_country_code() {
        let r = rules();
        let n = |d: &str| r.normalise(d).map(|e| e.as_str().to_string());
        assert_eq!(n("0612345678").as_deref(), Some("+33612345678"));
        assert_eq!(n("06 12 34 56 78").as_deref(), Some("+33612345678"));
        assert_eq!(n("+1 555 0100").as_deref(), Some("+15550100"));
        assert_eq!(n("0044 20 7946 0018").as_deref(), Some("+442079460018"));
        assert_eq!(n("hello"), None);
        let plain = OutboundRules::default();
        assert_eq!(plain.normalise("0612345678"), None);
    }

    #[test]
    fn deny_and_allow_patterns() {
        let r = rules();
        assert!(matches!(
            r.check("+19005550100"),
            Err(Restriction::Denied(p)) if p.text == "+1900*"
        ));
        assert!(matches!(r.check("+449123"), Err(Restriction::Denied(_))));
        assert_eq!(r.check("+15550100"), Ok(()));
        let mut only_france = r.clone();
        only_france.allow = vec![NumberPattern::parse("+33*").expect("pattern")];
        assert_eq!(only_france.check("+33612345678"), Ok(()));
        assert_eq!(only_france.check("+15550100"), Err(Restriction::NotAllowed));
        assert!(r.is_emergency("112"));
        assert!(r.is_emergency("1 5"));
        assert!(!r.is_emergency("+112"));
    }

    #[test]
    fn bad_rules_name_the_key() {
        let mut errors = Errors::new(std::path::Path::new("t.toml"));
        compile_outbound(
            OutboundRulesSpec {
                country_code: Some("33a".into()),
                national_prefix: None,
                deny: Some(vec!["1900*".into()]),
                allow: None,
                emergency: Some(vec!["".into()]),
            },
            &mut errors,
        );
        let keys: Vec<String> = errors
            .finish()
            .map(|e| e.0.into_iter().map(|e| e.key).collect())
            .unwrap_or_default();
        assert!(
            keys.contains(&"outbound.country_code".to_string()),
            "{keys:?}"
        );
        assert!(keys.contains(&"outbound.deny[0]".to_string()), "{keys:?}");
        assert!(
            keys.contains(&"outbound.emergency[0]".to_string()),
            "{keys:?}"
        );
    }
}
