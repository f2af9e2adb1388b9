//! Rules by root name: never `GET /health`, always `POST /checkout`, a rate for the rest.

use std::fmt;
use std::str::FromStr;

use super::{Always, Never, Rate, RateLimit, Sampler, SamplingContext, SamplingDecision};

/// Samplers chosen by the root span's name: the first rule whose pattern matches decides;
/// when none matches, the fallback does (by default [`Always`]).
///
/// A pattern is an exact name, a prefix ending in `*` (`GET /static/*`), or `*` alone (any
/// name).
///
/// # Text form (`TOMOGRAPH_SAMPLE_RULES`)
///
/// Rules separated by commas, each `pattern=value`, where the value is a fraction of traces
/// kept (`0`, `1`, `0.25`) or a rate limit (`20/s`: at most 20 traces a second). Spaces
/// around patterns and values are ignored; a pattern is split from its value at the last `=`;
/// names containing a comma cannot be written this way (use the builder). Without a `*`
/// rule, the names no rule matches follow `TOMOGRAPH_SAMPLE_RATE`.
///
/// ```
/// use tomograph::sample::{Rules, Sampler, SamplingContext};
/// use tomograph::TraceId;
///
/// let rules: Rules = "GET /health=0, POST /checkout=1, GET /static/*=10/s, *=0.01".parse().unwrap();
/// let decide = |name| rules.sample(&SamplingContext::new(name, TraceId::from_u64(5).unwrap())).is_keep();
/// assert!(!decide("GET /health"));
/// assert!(decide("POST /checkout"));
/// assert!(decide("GET /static/logo.png"), "the first of this second");
///
/// let err = "GET /health=never".parse::<Rules>().unwrap_err();
/// assert_eq!(err.item(), "GET /health=never");
/// ```
///
/// In code:
///
/// ```
/// use tomograph::sample::{Never, Rate, Rules, Always};
/// let rules = Rules::new()
///     .exact("GET /health", Never)
///     .exact("POST /checkout", Always)
///     .prefix("GET /api/", Rate::new(0.1))
///     .otherwise(Rate::new(0.01));
/// let config = tomograph::Config::builder().sampler(rules).build();
/// ```
#[derive(Debug)]
pub struct Rules {
    rules: Vec<Rule>,
    fallback: Box<dyn Sampler>,
}

#[derive(Debug)]
struct Rule {
    pattern: Pattern,
    sampler: Box<dyn Sampler>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    Prefix(String),
    Any,
}

impl Pattern {
    fn parse(text: &str) -> Self {
        match text {
            "*" => Pattern::Any,
            _ => match text.strip_suffix('*') {
                Some(prefix) => Pattern::Prefix(prefix.to_owned()),
                None => Pattern::Exact(text.to_owned()),
            },
        }
    }

    #[inline]
    fn matches(&self, name: &str) -> bool {
        match self {
            Pattern::Exact(exact) => name == exact,
            Pattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Pattern::Any => true,
        }
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self::new()
    }
}

impl Rules {
    /// No rules; everything falls back to [`Always`].
    pub fn new() -> Self {
        Self {
            rules: Vec::new(),
            fallback: Box::new(Always),
        }
    }

    /// Roots named exactly `name` are decided by `sampler`.
    pub fn exact(mut self, name: impl Into<String>, sampler: impl Sampler) -> Self {
        self.rules.push(Rule {
            pattern: Pattern::Exact(name.into()),
            sampler: Box::new(sampler),
        });
        self
    }

    /// Roots whose name starts with `prefix` are decided by `sampler`.
    pub fn prefix(mut self, prefix: impl Into<String>, sampler: impl Sampler) -> Self {
        self.rules.push(Rule {
            pattern: Pattern::Prefix(prefix.into()),
            sampler: Box::new(sampler),
        });
        self
    }

    /// Roots no rule matches are decided by `sampler`.
    pub fn otherwise(mut self, sampler: impl Sampler) -> Self {
        self.fallback = Box::new(sampler);
        self
    }

    /// Parses the text form (see the type's docs), with `fallback` for names no rule matches
    /// (a `*` rule makes it unreachable).
    pub fn parse_with_fallback(
        text: &str,
        fallback: impl Sampler,
    ) -> Result<Self, RulesParseError> {
        let mut rules = Self::new().otherwise(fallback);
        for item in text.split(',') {
            let trimmed = item.trim();
            if trimmed.is_empty() {
                continue;
            }
            let bad = |reason: &'static str| RulesParseError {
                item: trimmed.chars().take(120).collect(),
                reason,
            };
            let (pattern, value) = trimmed
                .rsplit_once('=')
                .ok_or_else(|| bad("expected pattern=value"))?;
            let pattern = pattern.trim();
            if pattern.is_empty() {
                return Err(bad("the pattern is empty"));
            }
            let sampler = parse_value(value.trim()).ok_or_else(|| {
                bad("expected a fraction from 0 to 1 (0.25) or a rate limit (20/s)")
            })?;
            rules.rules.push(Rule {
                pattern: Pattern::parse(pattern),
                sampler,
            });
        }
        Ok(rules)
    }
}

fn parse_value(value: &str) -> Option<Box<dyn Sampler>> {
    if let Some(per_second) = value.strip_suffix("/s") {
        let n: f64 = per_second.trim().parse().ok()?;
        return (n.is_finite() && n >= 0.0).then(|| Box::new(RateLimit::per_second(n)) as _);
    }
    let rate: f64 = value.parse().ok()?;
    if !(0.0..=1.0).contains(&rate) {
        return None;
    }
    Some(if rate == 0.0 {
        Box::new(Never)
    } else if rate == 1.0 {
        Box::new(Always)
    } else {
        Box::new(Rate::new(rate))
    })
}

impl FromStr for Rules {
    type Err = RulesParseError;

    /// The text form (see the type's docs); names no rule matches are kept.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse_with_fallback(text, Always)
    }
}

impl Sampler for Rules {
    fn sample(&self, context: &SamplingContext<'_>) -> SamplingDecision {
        let name = context.name();
        match self.rules.iter().find(|r| r.pattern.matches(name)) {
            Some(rule) => rule.sampler.sample(context),
            None => self.fallback.sample(context),
        }
    }
}

/// A rule of the text form that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad sampling rule {item:?}: {reason}")]
pub struct RulesParseError {
    item: String,
    reason: &'static str,
}

impl RulesParseError {
    /// The rule (`pattern=value`) that does not parse.
    pub fn item(&self) -> &str {
        &self.item
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Exact(name) => f.write_str(name),
            Pattern::Prefix(prefix) => write!(f, "{prefix}*"),
            Pattern::Any => f.write_str("*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TraceId;

    fn keeps(rules: &Rules, name: &str) -> bool {
        let trace = TraceId::from_u64(77).unwrap_or_else(|| unreachable!());
        rules.sample(&SamplingContext::new(name, trace)).is_keep()
    }

    #[test]
    fn the_first_match_wins() {
        let rules: Rules = "GET /api/health=0, GET /api/*=1, *=0"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!keeps(&rules, "GET /api/health"));
        assert!(keeps(&rules, "GET /api/users"));
        assert!(!keeps(&rules, "POST /api/users"));
    }

    #[test]
    fn patterns_may_contain_equals_signs() {
        let rules: Rules = "GET /q?a=b=0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(!keeps(&rules, "GET /q?a=b"));
        assert!(keeps(&rules, "GET /q"));
        assert_eq!(rules.rules[0].pattern.to_string(), "GET /q?a=b");
    }

    #[test]
    fn bad_rules_say_which_and_why() {
        for (text, item) in [
            ("GET /=0,nothing", "nothing"),
            ("=1", "=1"),
            ("GET /=1.5", "GET /=1.5"),
            ("GET /=-1/s", "GET /=-1/s"),
            ("GET /=often", "GET /=often"),
        ] {
            let err = text.parse::<Rules>().map(|_| ()).unwrap_err();
            assert_eq!(err.item(), item, "{text}");
            assert!(err.to_string().contains(item), "{err}");
        }
        assert!(" , ".parse::<Rules>().is_ok(), "empty items are skipped");
    }
}
