//! The conversation panel (`JarvisAdapter.chat`) and the core's mode. A message goes to the [`ChatBackend`]
//! (the agent, when one is configured); its reply streams into the last bubble. While waiting the core shows
//! "thinking", while text arrives "speaking", then it rests. The panel opens with the conversation the agent
//! reloaded from the store.

use std::sync::Arc;

use slint::{ComponentHandle, Model};

use crate::kiosk::ui::{AppWindow, ChatMessage, CoreMode, JarvisAdapter};
use crate::kiosk::{format, rows, KioskContext};

/// Messages kept in the panel (the list is virtualised; this bounds memory, not frame time).
pub const CHAT_ROWS: usize = 1000;

/// What Jarvis says when nothing can answer: no language model and no offline engine configured.
pub const NO_AGENT: &str =
    "I have no conversational faculties configured yet, sir. The terminal below runs \
                            commands, and the cards to the right await your approval.";

pub use crate::agent::{ChatBackend, ChatDelta};

/// What Jarvis says to a question too long to read.
pub fn too_long(chars: usize) -> String {
    format!(
        "That is {chars} characters, sir — rather more than I read at once. {} at most, if you please.",
        crate::agent::MAX_QUESTION_CHARS
    )
}

fn message(from_jarvis: bool, text: &str, streaming: bool) -> ChatMessage {
    message_at(from_jarvis, text, streaming, crate::time::now_ms())
}

fn message_at(from_jarvis: bool, text: &str, streaming: bool, ts_ms: u64) -> ChatMessage {
    ChatMessage {
        from_jarvis,
        text: text.into(),
        streaming,
        time: format::clock(ts_ms, &format::local_zone()).into(),
    }
}

/// Adds a message (UI thread).
pub fn push(w: &AppWindow, msg: ChatMessage) {
    let handle = w.global::<JarvisAdapter>().get_chat();
    if let Some(m) = handle
        .as_any()
        .downcast_ref::<slint::VecModel<ChatMessage>>()
    {
        m.push(msg);
        if m.row_count() > CHAT_ROWS {
            m.remove(0);
        }
    }
}

/// Appends a streamed piece to the last (Jarvis) bubble, or finishes it (UI thread).
pub fn stream(w: &AppWindow, piece: Option<&str>) {
    let a = w.global::<JarvisAdapter>();
    let handle = a.get_chat();
    let Some(m) = handle
        .as_any()
        .downcast_ref::<slint::VecModel<ChatMessage>>()
    else {
        return;
    };
    let Some(last) = m.row_count().checked_sub(1) else {
        return;
    };
    let Some(mut msg) = m.row_data(last) else {
        return;
    };
    match piece {
        Some(p) => {
            msg.text = format!("{}{p}", msg.text).into();
            if a.get_mode() != CoreMode::Speaking {
                a.set_mode(CoreMode::Speaking);
            }
        }
        None => {
            msg.streaming = false;
            a.set_mode(CoreMode::Idle);
        }
    }
    m.set_row_data(last, msg);
}

pub fn setup(w: &AppWindow, ctx: &KioskContext, backend: Option<Arc<dyn ChatBackend>>) {
    let a = w.global::<JarvisAdapter>();
    a.set_chat(rows::new_model::<ChatMessage>().1);
    // The conversation carries on across restarts; so does the panel.
    if let Some(b) = &backend {
        for (from_jarvis, text, ts) in b.history() {
            push(w, message_at(from_jarvis, &text, false, ts));
        }
    }
    let (ctx, weak) = (ctx.clone(), w.as_weak());
    a.on_send_chat(move |text| {
        let Some(w) = weak.upgrade() else { return };
        let text = text.trim().to_string();
        if text.is_empty() {
            return;
        }
        // A paste (or a stuck key) longer than any question: said in the panel, not sent.
        let chars = text.chars().count();
        if chars > crate::agent::MAX_QUESTION_CHARS {
            push(&w, message(true, &too_long(chars), false));
            return;
        }
        ctx.bus
            .publish(crate::bus::asked(crate::kiosk::ACTOR, &text));
        push(&w, message(false, &text, false));
        push(&w, message(true, "", true));
        w.global::<JarvisAdapter>().set_mode(CoreMode::Thinking);
        let Some(backend) = backend.clone() else {
            stream(&w, Some(NO_AGENT));
            stream(&w, None);
            return;
        };
        let (ui, weak) = (ctx.ui.clone(), weak.clone());
        ctx.runtime.spawn(async move {
            let mut rx = backend.ask(text);
            while let Some(delta) = rx.recv().await {
                let piece = match delta {
                    ChatDelta::Text(t) => t,
                    ChatDelta::Error(e) => format!("\n[{e}]"),
                };
                let weak = weak.clone();
                ui.post(move || {
                    if let Some(w) = weak.upgrade() {
                        stream(&w, Some(&piece));
                    }
                });
            }
            ui.post(move || {
                if let Some(w) = weak.upgrade() {
                    stream(&w, None);
                }
            });
        });
    });
}
