//! Tools built from a typed argument struct: the JSON Schema comes from `schemars`, validation is serde's
//! deserialisation into the same struct (unknown fields refused), and a failure names the field.

use std::marker::PhantomData;

use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::{Prepared, Tier, Tool, ToolContext, ToolError, ToolSettings};
use crate::state::World;

pub type Summary<A> = fn(&A, &World) -> String;
pub type Runner<A> = fn(ToolContext, A) -> BoxFuture<'static, Result<Value, ToolError>>;
/// Checks arguments against the world before anything is asked or run (e.g. "that guest exists").
pub type Check<A> = fn(&A, &World) -> Result<(), ToolError>;
/// The tier of one call, from its arguments and the tools' settings.
pub type TierOf<A> = fn(&A, &ToolSettings) -> Tier;

pub struct TypedTool<A> {
    name: &'static str,
    description: &'static str,
    tier: Tier,
    schema: Value,
    summary: Summary<A>,
    check: Option<Check<A>>,
    tier_of: Option<TierOf<A>>,
    run: Runner<A>,
    _args: PhantomData<fn() -> A>,
}

impl<A: DeserializeOwned + Serialize + JsonSchema + Send + 'static> TypedTool<A> {
    pub fn new(
        name: &'static str,
        tier: Tier,
        description: &'static str,
        summary: Summary<A>,
        run: Runner<A>,
    ) -> Self {
        let mut schema = serde_json::to_value(schemars::schema_for!(A))
            .unwrap_or_else(|_| serde_json::json!({}));
        if let Some(o) = schema.as_object_mut() {
            o.remove("$schema");
            o.remove("title");
            o.entry("type").or_insert(Value::String("object".into()));
            o.entry("properties")
                .or_insert(Value::Object(Default::default()));
        }
        TypedTool {
            name,
            description,
            tier,
            schema,
            summary,
            check: None,
            tier_of: None,
            run,
            _args: PhantomData,
        }
    }

    /// Makes the tier depend on the arguments (at most the listed tier).
    pub fn with_tier(mut self, tier_of: TierOf<A>) -> Self {
        self.tier_of = Some(tier_of);
        self
    }

    /// Adds a check of the arguments against the world, run before an approval is asked or the tool runs.
    pub fn with_check(mut self, check: Check<A>) -> Self {
        self.check = Some(check);
        self
    }

    fn parse(&self, args: Value) -> Result<A, ToolError> {
        let args = if args.is_null() {
            Value::Object(Default::default())
        } else {
            args
        };
        serde_path_to_error::deserialize::<_, A>(args).map_err(|e| {
            let message = e.inner().to_string();
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() {
                backticked(&message).unwrap_or_default()
            } else {
                path
            };
            ToolError::InvalidArguments {
                tool: self.name.to_string(),
                field,
                message,
            }
        })
    }
}

/// The first `name` in a serde message like "missing field `vmid`".
fn backticked(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_string())
}

impl<A: DeserializeOwned + Serialize + JsonSchema + Send + 'static> Tool for TypedTool<A> {
    fn name(&self) -> &str {
        self.name
    }

    fn description(&self) -> &str {
        self.description
    }

    fn tier(&self) -> Tier {
        self.tier
    }

    fn schema(&self) -> &Value {
        &self.schema
    }

    fn tier_for(&self, canonical: &Value, settings: &ToolSettings) -> Tier {
        match (self.tier_of, self.parse(canonical.clone())) {
            (Some(f), Ok(a)) => f(&a, settings).min(self.tier),
            _ => self.tier,
        }
    }

    fn prepare(&self, args: Value, world: &World) -> Result<Prepared, ToolError> {
        let typed = self.parse(args)?;
        if let Some(check) = self.check {
            check(&typed, world)?;
        }
        let summary = (self.summary)(&typed, world);
        let canonical =
            serde_json::to_value(&typed).map_err(|e| ToolError::Failed(e.to_string()))?;
        Ok(Prepared { canonical, summary })
    }

    fn run(
        &self,
        ctx: ToolContext,
        canonical: Value,
    ) -> BoxFuture<'static, Result<Value, ToolError>> {
        match self.parse(canonical) {
            Ok(typed) => (self.run)(ctx, typed),
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Serialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Args {
        /// The guest id.
        vmid: u32,
        #[serde(default)]
        force: bool,
    }

    fn tool() -> TypedTool<Args> {
        TypedTool::new(
            "probe",
            Tier::Read,
            "A probe.",
            |a, _| format!("probe {}", a.vmid),
            |_, a| Box::pin(async move { Ok(serde_json::json!({"vmid": a.vmid})) }),
        )
    }

    #[test]
    fn the_schema_describes_the_arguments() {
        let t = tool();
        let s = t.schema();
        assert_eq!(s["type"], "object");
        assert_eq!(s["properties"]["vmid"]["type"], "integer");
        assert_eq!(s["required"], serde_json::json!(["vmid"]));
        assert!(s.get("$schema").is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let t = tool();
        let w = World::default();
        let field = |v: Value| match t.prepare(v, &w) {
            Err(ToolError::InvalidArguments { field, .. }) => field,
            other => panic!(
                "expected invalid arguments, got {:?}",
                other.map(|p| p.summary)
            ),
        };
        assert_eq!(field(serde_json::json!({})), "vmid");
        assert_eq!(field(serde_json::json!({"vmid": "abc"})), "vmid");
        assert_eq!(field(serde_json::json!({"vmid": -1})), "vmid");
        assert_eq!(
            field(serde_json::json!({"vmid": 1, "force": "yes"})),
            "force"
        );
        assert_eq!(field(serde_json::json!({"vmid": 1, "colour": 2})), "colour");
        let ok = t
            .prepare(serde_json::json!({"vmid": 7}), &w)
            .expect("valid");
        assert_eq!(ok.canonical, serde_json::json!({"vmid": 7, "force": false}));
        assert_eq!(ok.summary, "probe 7");
    }
}
