//! Jarvis's eyes (issue 12 onwards): photos and camera frames in, faces out. Today: [`photo`], decoding a JPEG or
//! PNG that came from outside (an upload, a camera snapshot) safely — limits checked from the header before any
//! pixel is decoded, EXIF orientation applied, every colour model turned into RGB; [`faces`], the engine (YuNet
//! detection with landmarks, [`align`]ment to the 112×112 template, SFace embeddings compared by cosine; SFace's PRelu as one pass, [`prelu`], both models' depthwise convolutions, [`depthwise`], with the batch norms and activations after them, [`epilogue`],
//! YuNet's max-pools, [`maxpool`], and 1×1 convolutions over large planes, [`pointwise`]). The
//! [`quality`] gates say whether a face is good enough to enrol or learn from. The gallery, enrolment and review
//! build on them. Presence (issue 13): the [`cameras`] as configured, the [`presence`] rules, the [`timeline`] in
//! the store and the [`household`] task that keeps who is home live; Frigate's API and MQTT ([`frigate`]); cameras
//! Jarvis decodes itself ([`rtsp`]) and their latest [`frames`].

pub mod align;
pub mod cameras;
pub mod depthwise;
pub mod epilogue;
pub mod faces;
pub mod frames;
pub mod frigate;
pub mod gallery;
pub mod household;
pub mod maxpool;
pub mod photo;
pub mod pointwise;
pub mod prelu;
pub mod presence;
pub mod quality;
pub mod review;
pub mod rtsp;
pub mod service;
pub mod timeline;

/// "1 photo", "3 photos".
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
