//! What the language models cost: a ledger row per model call (provider, model, tokens in / out / cached, price
//! from the table in the config) in the store, the day's and month's totals for the budgets and
//! `GET /api/v1/costs`, and [`Metered`], the provider wrapper that writes the ledger.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use rusqlite::params;
use serde::Serialize;
use tokio::sync::mpsc;

use super::llm::{Completion, LlmError, Message, Provider, SystemPrompt, ToolSpec, Usage};
use crate::store::{Store, StoreError};

/// US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Price {
    pub input: f64,
    pub output: f64,
    /// Cache reads.
    pub cached: f64,
}

impl Price {
    pub fn cost(&self, u: Usage) -> f64 {
        (u.input as f64 * self.input
            + u.output as f64 * self.output
            + u.cached as f64 * self.cached)
            / 1e6
    }
}

/// Prices by model name; a model not listed costs nothing (a local model).
pub type PriceTable = BTreeMap<String, Price>;

/// Anthropic's list prices when this was written (USD per million tokens); `[prices]` in the config overrides.
pub fn default_prices() -> PriceTable {
    [
        (
            "claude-sonnet-4-5",
            Price {
                input: 3.0,
                output: 15.0,
                cached: 0.3,
            },
        ),
        (
            "claude-haiku-4-5",
            Price {
                input: 1.0,
                output: 5.0,
                cached: 0.1,
            },
        ),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_string(), p))
    .collect()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    pub calls: u64,
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRow {
    pub ts_ms: u64,
    pub provider: String,
    pub model: String,
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub cost_usd: f64,
    /// The server reported no token counts; these are estimated.
    pub estimated: bool,
}

pub fn record(store: &Store, row: &CallRow) -> Result<(), StoreError> {
    store.write(|tx| {
        tx.execute(
            "INSERT INTO llm_calls (ts_ms, provider, model, input, output, cached, cost_usd, estimated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![row.ts_ms as i64, row.provider, row.model, row.input as i64, row.output as i64, row.cached as i64, row.cost_usd, row.estimated],
        )
        .map(|_| ())
    })
}

/// Totals of the calls at or after `since_ms`.
pub fn totals_since(store: &Store, since_ms: u64) -> Result<Totals, StoreError> {
    store.read(|c| {
        c.query_row(
            "SELECT COUNT(*), COALESCE(SUM(input),0), COALESCE(SUM(output),0), COALESCE(SUM(cached),0), COALESCE(SUM(cost_usd),0.0)
             FROM llm_calls WHERE ts_ms >= ?1",
            params![since_ms as i64],
            |r| {
                Ok(Totals {
                    calls: r.get::<_, i64>(0)? as u64,
                    input: r.get::<_, i64>(1)? as u64,
                    output: r.get::<_, i64>(2)? as u64,
                    cached: r.get::<_, i64>(3)? as u64,
                    usd: r.get(4)?,
                })
            },
        )
    })
}

pub fn recent(store: &Store, limit: usize) -> Result<Vec<CallRow>, StoreError> {
    store.read(|c| {
        let mut stmt = c.prepare_cached(
            "SELECT ts_ms, provider, model, input, output, cached, cost_usd, estimated FROM llm_calls ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64], |r| {
            Ok(CallRow {
                ts_ms: r.get::<_, i64>(0)? as u64,
                provider: r.get(1)?,
                model: r.get(2)?,
                input: r.get::<_, i64>(3)? as u64,
                output: r.get::<_, i64>(4)? as u64,
                cached: r.get::<_, i64>(5)? as u64,
                cost_usd: r.get(6)?,
                estimated: r.get(7)?,
            })
        })?;
        rows.collect()
    })
}

/// Midnight today and the first of this month (UTC), in ms.
pub fn day_and_month_start(now_ms: u64) -> (u64, u64) {
    let ts =
        jiff::Timestamp::from_millisecond(now_ms as i64).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let date = ts.to_zoned(jiff::tz::TimeZone::UTC).date();
    let ms = |d: jiff::civil::Date| {
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_millisecond().max(0) as u64)
            .unwrap_or(0)
    };
    (ms(date), ms(date.first_of_month()))
}

/// A provider whose every call lands in the ledger.
pub struct Metered {
    inner: Arc<dyn Provider>,
    /// `local` or `claude`.
    label: String,
    store: Arc<Store>,
    prices: Arc<PriceTable>,
}

impl Metered {
    pub fn new(
        inner: Arc<dyn Provider>,
        label: &str,
        store: Arc<Store>,
        prices: Arc<PriceTable>,
    ) -> Metered {
        Metered {
            inner,
            label: label.to_string(),
            store,
            prices,
        }
    }
}

impl Provider for Metered {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn complete<'a>(
        &'a self,
        system: &'a SystemPrompt,
        messages: &'a [Message],
        tools: &'a [ToolSpec],
        deltas: Option<mpsc::Sender<String>>,
    ) -> BoxFuture<'a, Result<Completion, LlmError>> {
        Box::pin(async move {
            let c = self.inner.complete(system, messages, tools, deltas).await?;
            let price = self.prices.get(&c.model).copied().unwrap_or_default();
            let row = CallRow {
                ts_ms: crate::time::now_ms(),
                provider: self.label.clone(),
                model: c.model.clone(),
                input: c.usage.input,
                output: c.usage.output,
                cached: c.usage.cached,
                cost_usd: price.cost(c.usage),
                estimated: c.usage.estimated,
            };
            let store = self.store.clone();
            match tokio::task::spawn_blocking(move || record(&store, &row)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("cannot write the cost ledger: {e}"),
                Err(e) => tracing::error!("cost ledger task: {e}"),
            }
            Ok(c)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_and_periods() {
        let p = Price {
            input: 3.0,
            output: 15.0,
            cached: 0.3,
        };
        let cost = p.cost(Usage {
            input: 1_000_000,
            output: 100_000,
            cached: 2_000_000,
            estimated: false,
        });
        assert!((cost - (3.0 + 1.5 + 0.6)).abs() < 1e-9);
        // 2026-11-24 11:30:10 UTC
        let (day, month) = day_and_month_start(1_795_519_810_000);
        assert_eq!(day, 1_795_478_400_000);
        assert_eq!(month, 1_793_491_200_000);
    }

    #[test]
    fn the_ledger_sums_by_period() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("t.db")).expect("store");
        for (ts, usd) in [(1_000, 0.5), (5_000, 0.25), (9_000, 1.0)] {
            let row = CallRow {
                ts_ms: ts,
                provider: "claude".into(),
                model: "m".into(),
                input: 10,
                output: 2,
                cached: 1,
                cost_usd: usd,
                estimated: false,
            };
            record(&store, &row).expect("record");
        }
        let t = totals_since(&store, 5_000).expect("totals");
        assert_eq!((t.calls, t.input, t.output, t.cached), (2, 20, 4, 2));
        assert!((t.usd - 1.25).abs() < 1e-9);
        assert_eq!(recent(&store, 1).expect("recent")[0].ts_ms, 9_000);
    }
}
