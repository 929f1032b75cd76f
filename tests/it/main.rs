//! Integration tests: one binary (so the crate links once), modules by subsystem. Every peer is real and on
//! loopback: the PVE simulator over HTTPS, the side port over HTTP and WebSocket, the `jarvis` binary itself.

mod agent; // the offline intent engine on every surface: REST, WebSocket, CLI
mod cli; // the binary: check-config, demo, SIGTERM, kill -9 while writing
mod client; // the PVE client against the simulator, including every fault
mod contract; // client and simulator against the PVE API schema
mod conversation; // memory, persistence across restarts, folding, conversations about code staying with Claude
mod display; // the real binary on a real X server: xdotool typing, the GPU fallback, a root without fonts
mod faces; // the face engine on real photos with the real models: detection, landmarks, embeddings
mod faces_api; // enrolment over HTTP and every wrong photo, the review queue via REST, MCP and the CLI, delete
mod files;
mod frigate; // the Frigate simulator over HTTP and a real mosquitto: events to presence, every fault // downloads behind the SSRF guard, file roots
mod frigate_contract; // the Frigate simulator's routes, answers and MQTT payloads against Frigate 0.16's spec
mod kiosk; // the HUD rendered headless at every size, and its callbacks through the registry
mod kiosk_input; // the HUD driven by real pointer, touch and key events: typing, the on-screen keyboard
mod llama; // the agent against a real llama-server (llama-cpp-python, SmolLM2-135M): streaming, kill -9, recovery
mod llm; // the OpenAI-compatible provider and the tool loop against a scripted SSE server
mod mcp; // MCP with the official Python SDK, over streamable HTTP and stdio
mod mcp_forgery; // MCP as an attacker speaks it: forged and replayed confirmations, foreign Origin, session flood
mod poller; // events, staleness, back-off and recovery
mod presence; // who is home from faces seen on cameras: arrivals, departures, the timeline in words, restarts
mod rtsp; // cameras Jarvis decodes itself against a real RTSP server: H.264, H.265, every fault
mod side_tls; // the side port over HTTPS: pinned clients, wss, the CLI, plain HTTP and stalled handshakes
mod ssh; // SSH against a real sshd: commands, host keys, timeouts, temperatures
mod tools; // the registry, the safety gate, approvals, kill switch, and the tools themselves
mod util; // shared helpers
mod voice; // the voice models on speech synthesised at test time: the wake word, the VAD, every wrong WAV
mod voice_cloud; // the cloud transcription and voices against servers speaking OpenAI's and ElevenLabs' formats
mod web; // side port: auth, REST, WebSocket, slow clients, body limits
