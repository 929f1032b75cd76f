//! The simulator's HTTP surface: the PVE API routes under `/api2/json` (listed in [`routes`], which the contract
//! test walks), PVE-style token auth and errors (status + reason phrase), fault injection, and the `/_sim`
//! control routes that tests and the demo use to change the world from outside.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use super::model::{Power, SimFailure, SimModel, SnapshotOp};
use crate::cluster::client::PowerAction;
use crate::cluster::model::GuestKind;

/// Faults injected into every `/api2/json` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Added delay before answering.
    pub latency_ms: u64,
    /// Answer every request with this HTTP status (e.g. 500, 503).
    pub fail_status: Option<u16>,
    /// Apply `fail_status` only to this path below `/api2/json` (e.g. `/cluster/resources`); all paths when unset.
    pub fail_path: Option<String>,
    /// Answer 200 with a body that is not valid JSON.
    pub malformed: bool,
    /// Refuse every token as if it were wrong.
    pub reject_token: bool,
}

/// What one route serves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Endpoint {
    Version,
    ClusterStatus,
    ClusterResources,
    NodeStatus,
    Disks,
    GuestStatus(GuestKind),
    StorageStatus,
    TaskStatus,
    TaskList,
    Power(GuestKind, PowerAction),
    Snapshots(GuestKind),
    CreateSnapshot(GuestKind),
    Rollback(GuestKind),
    DeleteSnapshot(GuestKind),
    NodeCommand,
}

/// A route as the PVE schema names it (`/nodes/{node}/status`) with its method.
#[derive(Debug, Clone)]
pub struct SimRoute {
    pub method: &'static str,
    pub path: String,
    pub endpoint: Endpoint,
}

/// Every PVE path the simulator serves.
pub fn routes() -> Vec<SimRoute> {
    let r = |method, path: &str, endpoint| SimRoute {
        method,
        path: path.to_string(),
        endpoint,
    };
    let mut out = vec![
        r("GET", "/version", Endpoint::Version),
        r("GET", "/cluster/status", Endpoint::ClusterStatus),
        r("GET", "/cluster/resources", Endpoint::ClusterResources),
        r("GET", "/nodes/{node}/status", Endpoint::NodeStatus),
        r("POST", "/nodes/{node}/status", Endpoint::NodeCommand),
        r("GET", "/nodes/{node}/disks/list", Endpoint::Disks),
        r(
            "GET",
            "/nodes/{node}/storage/{storage}/status",
            Endpoint::StorageStatus,
        ),
        r("GET", "/nodes/{node}/tasks", Endpoint::TaskList),
        r(
            "GET",
            "/nodes/{node}/tasks/{upid}/status",
            Endpoint::TaskStatus,
        ),
    ];
    for kind in [GuestKind::Qemu, GuestKind::Lxc] {
        out.push(r(
            "GET",
            &format!("/nodes/{{node}}/{}/{{vmid}}/status/current", kind.as_str()),
            Endpoint::GuestStatus(kind),
        ));
        let k = kind.as_str();
        out.push(r(
            "GET",
            &format!("/nodes/{{node}}/{k}/{{vmid}}/snapshot"),
            Endpoint::Snapshots(kind),
        ));
        out.push(r(
            "POST",
            &format!("/nodes/{{node}}/{k}/{{vmid}}/snapshot"),
            Endpoint::CreateSnapshot(kind),
        ));
        out.push(r(
            "POST",
            &format!("/nodes/{{node}}/{k}/{{vmid}}/snapshot/{{snapname}}/rollback"),
            Endpoint::Rollback(kind),
        ));
        out.push(r(
            "DELETE",
            &format!("/nodes/{{node}}/{k}/{{vmid}}/snapshot/{{snapname}}"),
            Endpoint::DeleteSnapshot(kind),
        ));
        for action in PowerAction::ALL {
            let path = format!(
                "/nodes/{{node}}/{}/{{vmid}}/status/{}",
                kind.as_str(),
                action.as_str()
            );
            out.push(r("POST", &path, Endpoint::Power(kind, action)));
        }
    }
    out
}

/// State shared by every request.
pub struct SimShared {
    pub model: Mutex<SimModel>,
    pub faults: Mutex<Faults>,
    /// The whole `Authorization` header value PVE would accept.
    expected_auth: String,
    token_user: String,
    requests: AtomicU64,
    per_path: Mutex<BTreeMap<String, u64>>,
}

impl SimShared {
    pub fn new(model: SimModel, token_id: &str, token_secret: &str) -> SimShared {
        SimShared {
            model: Mutex::new(model),
            faults: Mutex::new(Faults::default()),
            expected_auth: format!("PVEAPIToken={token_id}={token_secret}"),
            token_user: token_id.to_string(),
            requests: AtomicU64::new(0),
            per_path: Mutex::new(BTreeMap::new()),
        }
    }

    /// The model advanced to now. A poisoned lock (a panic mid-update) still yields the data.
    pub fn model_now(&self) -> MutexGuard<'_, SimModel> {
        let mut m = self.model.lock().unwrap_or_else(|p| p.into_inner());
        m.tick(crate::time::now_ms());
        m
    }

    pub fn faults(&self) -> Faults {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_faults(&self, f: Faults) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = f;
    }

    /// API requests served so far (all paths), and per schema path.
    pub fn request_counts(&self) -> (u64, BTreeMap<String, u64>) {
        let per = self
            .per_path
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        (self.requests.load(Ordering::Relaxed), per)
    }

    fn count(&self, path: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        *self
            .per_path
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(path.to_string())
            .or_default() += 1;
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let got = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        bool::from(got.ct_eq(self.expected_auth.as_bytes()))
    }
}

type Shared = Arc<SimShared>;

pub fn router(shared: Shared) -> Router {
    let mut api = Router::new();
    for route in routes() {
        let endpoint = route.endpoint;
        let schema_path = route.path.clone();
        let handler = move |State(s): State<Shared>,
                            Path(params): Path<HashMap<String, String>>,
                            Query(mut query): Query<HashMap<String, String>>,
                            body: axum::body::Bytes| async move {
            s.count(&schema_path);
            // PVE takes parameters from the query string and from a form-encoded body alike.
            match serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body) {
                Ok(form) => query.extend(form),
                Err(_) => {
                    return failure(SimFailure {
                        status: 400,
                        message: "Parameter verification failed.".into(),
                    })
                }
            }
            answer(&s, endpoint, &params, &query)
        };
        api = match route.method {
            "POST" => api.route(&route.path, post(handler)),
            "DELETE" => api.route(&route.path, axum::routing::delete(handler)),
            _ => api.route(&route.path, get(handler)),
        };
    }
    let api = api
        .fallback(|| async {
            failure(SimFailure {
                status: 501,
                message: "Method not implemented".into(),
            })
        })
        .layer(middleware::from_fn_with_state(shared.clone(), gate));
    let control = Router::new()
        .route("/faults", put(put_faults).get(get_faults))
        .route("/nodes/{node}/{state}", post(post_node))
        .route("/guests/{vmid}/power/{state}", post(post_guest))
        .route("/storages/{storage}/used/{pct}", post(post_storage))
        .route("/requests", get(get_requests))
        .layer(middleware::from_fn_with_state(shared.clone(), control_auth));
    Router::new()
        .nest("/api2/json", api)
        .nest("/_sim", control)
        .with_state(shared)
}

/// Token check and injected faults, in the order PVE would show them.
async fn gate(State(s): State<Shared>, req: Request, next: Next) -> Response {
    let faults = s.faults();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if faults.reject_token || !s.authorised(req.headers()) {
        return failure(SimFailure {
            status: 401,
            message: "invalid token value!".into(),
        });
    }
    let path_fails = faults
        .fail_path
        .as_deref()
        .is_none_or(|p| p == req.uri().path());
    if let (Some(status), true) = (faults.fail_status, path_fails) {
        return failure(SimFailure {
            status,
            message: "simulated failure".into(),
        });
    }
    if faults.malformed {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
            "{\"data\":[{\"id\":\"node/Home\",\"type\":",
        )
            .into_response();
    }
    next.run(req).await
}

async fn control_auth(State(s): State<Shared>, req: Request, next: Next) -> Response {
    if !s.authorised(req.headers()) {
        return failure(SimFailure {
            status: 401,
            message: "invalid token value!".into(),
        });
    }
    next.run(req).await
}

fn answer(
    s: &SimShared,
    endpoint: Endpoint,
    params: &HashMap<String, String>,
    query: &HashMap<String, String>,
) -> Response {
    let p = |k: &str| params.get(k).map(String::as_str).unwrap_or_default();
    let now = crate::time::now_ms();
    let vmid = || {
        p("vmid").parse::<u32>().map_err(|_| SimFailure {
            status: 400,
            message: "Parameter verification failed.".into(),
        })
    };
    let mut m = s.model_now();
    let result: Result<Value, SimFailure> = match endpoint {
        Endpoint::Version => Ok(m.version_json()),
        Endpoint::ClusterStatus => Ok(m.cluster_status_json()),
        Endpoint::ClusterResources => match query.get("type").map(String::as_str) {
            None | Some("vm" | "storage" | "node" | "sdn") => {
                Ok(m.cluster_resources_json(query.get("type").map(String::as_str), now))
            }
            Some(_) => Err(SimFailure {
                status: 400,
                message: "Parameter verification failed.".into(),
            }),
        },
        Endpoint::NodeStatus => m.node_status_json(p("node")),
        Endpoint::Disks => m.disks_json(p("node")),
        Endpoint::GuestStatus(kind) => {
            vmid().and_then(|v| m.guest_status_json(p("node"), kind, v, now))
        }
        Endpoint::StorageStatus => m.storage_status_json(p("node"), p("storage")),
        Endpoint::TaskStatus => m.task_status_json(p("node"), p("upid")),
        Endpoint::TaskList => {
            let errors = query.get("errors").is_some_and(|e| e == "1");
            let since = query.get("since").and_then(|s| s.parse().ok());
            let limit = query
                .get("limit")
                .and_then(|s| s.parse().ok())
                .unwrap_or(50);
            m.task_list_json(p("node"), errors, since, limit)
        }
        Endpoint::Snapshots(kind) => vmid().and_then(|v| m.snapshots_json(p("node"), kind, v)),
        Endpoint::CreateSnapshot(kind)
        | Endpoint::Rollback(kind)
        | Endpoint::DeleteSnapshot(kind) => {
            let op = match endpoint {
                Endpoint::CreateSnapshot(_) => SnapshotOp::Create {
                    name: query.get("snapname").cloned().unwrap_or_default(),
                    description: query.get("description").cloned().unwrap_or_default(),
                },
                Endpoint::Rollback(_) => SnapshotOp::Rollback {
                    name: p("snapname").to_string(),
                },
                _ => SnapshotOp::Delete {
                    name: p("snapname").to_string(),
                },
            };
            let user = s.token_user.clone();
            vmid()
                .and_then(|v| m.snapshot_action(p("node"), kind, v, op, &user, now))
                .map(Value::String)
        }
        Endpoint::NodeCommand => {
            let command = query.get("command").map(String::as_str).unwrap_or_default();
            m.node_command(p("node"), command, now)
                .map(|()| Value::Null)
        }
        Endpoint::Power(kind, action) => {
            let user = s.token_user.clone();
            vmid()
                .and_then(|v| m.power(p("node"), kind, v, action, &user, now))
                .map(Value::String)
        }
    };
    drop(m);
    match result {
        Ok(data) => Json(json!({ "data": data })).into_response(),
        Err(f) => failure(f),
    }
}

/// PVE's error style: the message is the HTTP reason phrase; the body carries `data: null`.
fn failure(f: SimFailure) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (
        status,
        Json(json!({ "data": null, "message": format!("{}\n", f.message) })),
    )
        .into_response();
    if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(f.message.into_bytes()) {
        resp.extensions_mut().insert(reason);
    }
    resp
}

fn control_result(ok: bool, what: String) -> Response {
    if ok {
        Json(json!({ "ok": true })).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("no such {what}") })),
        )
            .into_response()
    }
}

async fn put_faults(State(s): State<Shared>, Json(f): Json<Faults>) -> Response {
    s.set_faults(f);
    Json(json!({ "ok": true })).into_response()
}

async fn get_faults(State(s): State<Shared>) -> Json<Faults> {
    Json(s.faults())
}

async fn post_node(
    State(s): State<Shared>,
    Path((node, state)): Path<(String, String)>,
) -> Response {
    let online = match state.as_str() {
        "online" => true,
        "offline" => false,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "state is online or offline" })),
            )
                .into_response()
        }
    };
    let ok = s
        .model_now()
        .set_node_online(&node, online, crate::time::now_ms());
    control_result(ok, format!("node {node}"))
}

async fn post_guest(State(s): State<Shared>, Path((vmid, state)): Path<(u32, String)>) -> Response {
    let power = match state.as_str() {
        "running" => Power::Running,
        "stopped" => Power::Stopped,
        "paused" => Power::Paused,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "state is running, stopped or paused" })),
            )
                .into_response()
        }
    };
    let ok = s
        .model_now()
        .force_power(vmid, power, crate::time::now_ms());
    control_result(ok, format!("guest {vmid}"))
}

async fn post_storage(
    State(s): State<Shared>,
    Path((storage, pct)): Path<(String, f64)>,
) -> Response {
    let ok = s.model_now().set_storage_used_pct(&storage, pct);
    control_result(ok, format!("storage {storage}"))
}

async fn get_requests(State(s): State<Shared>) -> Json<Value> {
    let (total, per_path) = s.request_counts();
    Json(json!({ "total": total, "per_path": per_path }))
}
