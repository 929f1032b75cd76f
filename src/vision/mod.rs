//! Jarvis's eyes (issue 12 onwards): photos and camera frames in, faces out. Today: [`photo`], decoding a JPEG or
//! PNG that came from outside (an upload, a camera snapshot) safely — limits checked from the header before any
//! pixel is decoded, EXIF orientation applied, every colour model turned into RGB. The face engine (detection,
//! alignment, embedding, the gallery) builds on it.

pub mod photo;
