//! Power actions as the product performs them: send the action, announce it on the bus (the poller then polls
//! faster for a while, so the change shows at once), follow the task to its end, and announce how it ended. The
//! tool registry calls this; nothing else powers guests.

use std::time::Duration;

use super::api::TaskStatus;
use super::client::{PowerAction, PveClient, PveError};
use super::model::GuestKind;
use crate::bus::{Bus, Event};

/// How often a followed task is polled.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Runs `action` on a guest and waits (up to `limit`) for its task to end. The task's exit status is in the
/// result: `OK`, or PVE's message (a task that fails is not an `Err`; an unanswered or refused call is).
pub async fn power_and_follow(
    client: &PveClient,
    bus: &Bus,
    node: &str,
    kind: GuestKind,
    vmid: u32,
    action: PowerAction,
    limit: Duration,
) -> Result<TaskStatus, PveError> {
    let upid = client.power(node, kind, vmid, action).await?;
    bus.publish(Event::ActionStarted {
        upid: upid.to_string(),
        node: node.to_string(),
        vmid,
        action: action.as_str().to_string(),
    });
    let result = client
        .follow_task(&upid, FOLLOW_EVERY.min(limit), limit)
        .await;
    let exitstatus = match &result {
        Ok(status) => status
            .exitstatus
            .clone()
            .unwrap_or_else(|| "unknown".into()),
        Err(e) => format!("not followed to the end: {e}"),
    };
    bus.publish(Event::ActionFinished {
        upid: upid.to_string(),
        node: node.to_string(),
        vmid,
        action: action.as_str().to_string(),
        exitstatus,
    });
    result
}
