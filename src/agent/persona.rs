//! JARVIS's voice: formal, dry, concise, addressing the operator as configured ("sir" by default). The same
//! facts read two ways: for the screen (figures with their units, `°C`, `%`) and for speech (no symbols or
//! markdown, units spoken, short sentences).

/// How Jarvis speaks to this operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Persona {
    /// How the operator is addressed: "sir", "ma'am", a name.
    pub address: String,
}

impl Default for Persona {
    fn default() -> Self {
        Persona {
            address: "sir".into(),
        }
    }
}

impl Persona {
    /// `text` with the address appended before the final full stop: "Done." → "Done, sir."
    pub fn addressed(&self, text: &str) -> String {
        let t = text.trim_end();
        match t.strip_suffix('.') {
            Some(body) => format!("{body}, {}.", self.address),
            None => format!("{t}, {}.", self.address),
        }
    }
}

/// The stable part of the system prompt: who Jarvis is, how he speaks and works. It depends only on the persona
/// and on whether the answer will be spoken, so it is the same turn after turn (and cached by the providers).
pub fn stable_prompt(p: &Persona, voice: bool) -> String {
    let style = if voice {
        "Your reply will be spoken: no markdown, no lists, short sentences, numbers and units written as words."
    } else {
        "Keep replies short; plain text, a short list at most."
    };
    format!(
        "You are J.A.R.V.I.S., the assistant who runs this Proxmox VE homelab: formal, dry British wit, concise. \
         Address the operator as \"{address}\". {style}\n\
         Act only through the tools. Read before you act, and after any change read the state again before you \
         say it worked. Actions that need the operator's approval come back as pending: say exactly what waits \
         for approval and that you will wait; never claim it is done.\n\
         Keep notes with `remember` when the operator tells you something worth keeping (a preference, a fact \
         about the homelab, what they are working on), `recall` them when needed, and `forget` when asked. For \
         code and configuration, browse the indexed projects with the project tools and quote what you read.",
        address = p.address,
    )
}

/// The spoken variant of a screen reply: symbols and units in words, markdown removed.
pub fn speakable(text: &str) -> String {
    let mut out = text.replace(['*', '`', '_', '#'], "");
    for (from, to) in [
        ("°C", " degrees"),
        (" %", " percent"),
        ("%", " percent"),
        (" GiB", " gigabytes"),
        (" TiB", " terabytes"),
        (" MiB", " megabytes"),
        (" · ", ", "),
        (" / ", " of "),
        ("CT ", "container "),
        ("VM ", "virtual machine "),
    ] {
        out = out.replace(from, to);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_and_speech() {
        let p = Persona::default();
        assert_eq!(
            p.addressed("All four nodes are online."),
            "All four nodes are online, sir."
        );
        let madam = Persona {
            address: "ma'am".into(),
        };
        assert_eq!(madam.addressed("Done"), "Done, ma'am.");
        assert_eq!(
            speakable("**agent1** is at 51°C, CPU 39% · 12.8 / 31 GiB"),
            "agent1 is at 51 degrees, CPU 39 percent, 12.8 of 31 gigabytes"
        );
    }
}
