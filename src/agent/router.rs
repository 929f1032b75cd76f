//! Which model answers: the local one for routine and short requests, Claude for long context, code, multi-step
//! diagnosis — and for anything when the local model fails — as long as the day's and month's budgets allow.
//! Over budget, everything goes to the local model. The words that decide are built in and extended (or overruled)
//! in `[route]`.

use serde::Serialize;

/// `[route]` and `[budget]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteSettings {
    /// A request longer than this (in characters, with the recent conversation) counts as long context.
    pub long_chars: usize,
    /// Words that send a request to Claude, besides the built-in ones (`[route] claude_words`).
    pub extra_words: Vec<String>,
    /// Words that keep a request local even when it looks hard (`[route] local_words`).
    pub local_words: Vec<String>,
    pub daily_usd: Option<f64>,
    pub monthly_usd: Option<f64>,
}

impl Default for RouteSettings {
    fn default() -> Self {
        RouteSettings {
            long_chars: 2000,
            extra_words: Vec::new(),
            local_words: Vec::new(),
            daily_usd: Some(1.0),
            monthly_usd: Some(20.0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    Local,
    Claude,
}

/// Words that mark work the small model does badly: code, logs, diagnosis over several steps.
const HARD: &[&str] = &[
    "code",
    "source",
    "project",
    "repository",
    "function",
    "diagnose",
    "diagnosis",
    "why",
    "analyse",
    "analyze",
    "logs",
    "log",
    "debug",
    "troubleshoot",
    "explain",
    "compare",
    "plan",
    "review",
    "script",
    "refactor",
    "bug",
];

/// Whether a request is one for the big model: a word the operator keeps local wins, then long context, then a
/// hard word (built-in or configured).
pub fn is_hard(text: &str, context_chars: usize, s: &RouteSettings) -> bool {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_alphanumeric()).collect();
    if words.iter().any(|w| s.local_words.iter().any(|l| l == w)) {
        return false;
    }
    context_chars + text.len() > s.long_chars
        || words
            .iter()
            .any(|w| HARD.contains(w) || s.extra_words.iter().any(|e| e == w))
}

/// Whether spending may go on.
pub fn within_budget(s: &RouteSettings, spent_today: f64, spent_month: f64) -> bool {
    s.daily_usd.is_none_or(|d| spent_today < d) && s.monthly_usd.is_none_or(|m| spent_month < m)
}

/// The first choice for a request; `None` when no model is configured.
pub fn choose(hard: bool, has_local: bool, has_claude: bool, budget_ok: bool) -> Option<Route> {
    let claude = has_claude && budget_ok;
    if claude && (hard || !has_local) {
        Some(Route::Claude)
    } else if has_local {
        Some(Route::Local)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_goes_local_hard_goes_to_claude_within_budget() {
        let s = RouteSettings {
            long_chars: 100,
            extra_words: vec!["ceph".into()],
            local_words: vec!["joke".into()],
            daily_usd: Some(1.0),
            monthly_usd: Some(10.0),
        };
        assert!(is_hard("is ceph healthy", 0, &s), "a configured word");
        assert!(!is_hard("explain a joke", 0, &s), "a word kept local wins");
        assert!(
            !is_hard("explain a joke", 500, &s),
            "even over long context"
        );
        assert!(!is_hard("what's the weather like for the nas", 0, &s));
        assert!(is_hard("why does pve keep rebooting?", 0, &s));
        assert!(is_hard(
            "search the jarvis project for the poller code",
            0,
            &s
        ));
        assert!(is_hard("hello", 200, &s), "long context");
        assert!(within_budget(&s, 0.5, 5.0));
        assert!(!within_budget(&s, 1.0, 5.0), "daily budget spent");
        assert!(!within_budget(&s, 0.1, 10.5), "monthly budget spent");
        assert_eq!(choose(false, true, true, true), Some(Route::Local));
        assert_eq!(choose(true, true, true, true), Some(Route::Claude));
        assert_eq!(
            choose(true, true, true, false),
            Some(Route::Local),
            "over budget: local"
        );
        assert_eq!(
            choose(false, false, true, true),
            Some(Route::Claude),
            "only Claude configured"
        );
        assert_eq!(
            choose(false, false, true, false),
            None,
            "only Claude, over budget"
        );
        assert_eq!(choose(true, false, false, true), None);
    }
}
