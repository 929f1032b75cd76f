//! Ogg Opus: a spoken reply as the phone plays it (RFC 7845). The audio is resampled to 48 kHz, encoded by
//! Debian's libopus (through `opusic-sys`) in 20 ms voice frames, and wrapped in an Ogg stream (the `ogg` crate)
//! with its `OpusHead` (pre-skip = the encoder's lookahead) and `OpusTags` pages; the last page's granule position
//! trims the padding, so a decoder gives back exactly the reply's length.

use std::ffi::CStr;

use ogg::writing::{PacketWriteEndInfo, PacketWriter};
use opusic_sys as ffi;

/// Opus's own clock: granule positions always count 48 kHz samples.
const RATE: u32 = 48_000;
/// 20 ms frames.
const FRAME: usize = 960;
/// A voice reply needs no more (Opus's own advice for wideband speech is 16–32 kb/s).
const BITRATE: i32 = 32_000;
/// The largest packet libopus writes for one frame.
const MAX_PACKET: usize = 4000;

#[derive(Debug, thiserror::Error)]
pub enum OpusError {
    #[error("libopus: {0}")]
    Codec(String),
    #[error("cannot resample the reply for Opus: {0}")]
    Resample(String),
    #[error("cannot write the Ogg stream: {0}")]
    Ogg(#[from] std::io::Error),
}

/// One mono 48 kHz libopus encoder, freed on drop.
struct Encoder(*mut ffi::OpusEncoder);

impl Encoder {
    fn new() -> Result<Encoder, OpusError> {
        let mut error = 0;
        // SAFETY: the arguments are valid constants; libopus returns null or an encoder it owns until destroyed.
        let raw = unsafe {
            ffi::opus_encoder_create(RATE as i32, 1, ffi::OPUS_APPLICATION_VOIP, &mut error)
        };
        if raw.is_null() || error != ffi::OPUS_OK {
            return Err(OpusError::Codec(strerror(error)));
        }
        let encoder = Encoder(raw);
        encoder.ctl(ffi::OPUS_SET_BITRATE_REQUEST, BITRATE)?;
        encoder.ctl(ffi::OPUS_SET_SIGNAL_REQUEST, ffi::OPUS_SIGNAL_VOICE)?;
        Ok(encoder)
    }

    fn ctl(&self, request: i32, value: i32) -> Result<(), OpusError> {
        // SAFETY: a setter request takes one opus_int32 argument; the encoder is live.
        let rc = unsafe { ffi::opus_encoder_ctl(self.0, request, value) };
        if rc == ffi::OPUS_OK {
            Ok(())
        } else {
            Err(OpusError::Codec(strerror(rc)))
        }
    }

    /// Samples (at 48 kHz) the encoder delays its output by: the stream's pre-skip.
    fn lookahead(&self) -> Result<u16, OpusError> {
        let mut value: i32 = 0;
        // SAFETY: the getter request takes one pointer to an opus_int32; `value` outlives the call.
        let rc = unsafe {
            ffi::opus_encoder_ctl(
                self.0,
                ffi::OPUS_GET_LOOKAHEAD_REQUEST,
                &mut value as *mut i32,
            )
        };
        if rc != ffi::OPUS_OK {
            return Err(OpusError::Codec(strerror(rc)));
        }
        u16::try_from(value).map_err(|_| OpusError::Codec(format!("lookahead of {value}")))
    }

    fn encode(&mut self, frame: &[f32; FRAME]) -> Result<Vec<u8>, OpusError> {
        let mut packet = vec![0u8; MAX_PACKET];
        // SAFETY: `frame` holds FRAME mono samples; `packet` has MAX_PACKET bytes of room.
        let n = unsafe {
            ffi::opus_encode_float(
                self.0,
                frame.as_ptr(),
                FRAME as i32,
                packet.as_mut_ptr(),
                MAX_PACKET as i32,
            )
        };
        if n < 0 {
            return Err(OpusError::Codec(strerror(n)));
        }
        packet.truncate(n as usize);
        Ok(packet)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: created by opus_encoder_create, destroyed once.
        unsafe { ffi::opus_encoder_destroy(self.0) }
    }
}

fn strerror(code: i32) -> String {
    // SAFETY: opus_strerror returns a static NUL-terminated string for any code.
    unsafe { CStr::from_ptr(ffi::opus_strerror(code)) }
        .to_string_lossy()
        .into_owned()
}

/// Mono audio at `rate` Hz as an Ogg Opus file.
pub fn to_ogg_opus(samples: &[f32], rate: u32) -> Result<Vec<u8>, OpusError> {
    let pcm = super::wav::resample(samples, rate, RATE)
        .map_err(|e| OpusError::Resample(e.to_string()))?;
    let mut encoder = Encoder::new()?;
    let pre_skip = encoder.lookahead()?;
    let serial = rand::random::<u32>();
    let mut ogg = PacketWriter::new(Vec::with_capacity(pcm.len() / 8 + 256));

    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1); // version
    head.push(1); // channels
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&rate.to_le_bytes()); // the original rate, for information
    head.extend_from_slice(&0i16.to_le_bytes()); // output gain
    head.push(0); // mapping family 0: mono or stereo
    ogg.write_packet(head, serial, PacketWriteEndInfo::EndPage, 0)?;

    let vendor = b"jarvis (libopus)";
    let mut tags = Vec::with_capacity(16 + vendor.len());
    tags.extend_from_slice(b"OpusTags");
    tags.extend_from_slice(&(vendor.len() as u32).to_le_bytes());
    tags.extend_from_slice(vendor);
    tags.extend_from_slice(&0u32.to_le_bytes()); // no comments
    ogg.write_packet(tags, serial, PacketWriteEndInfo::EndPage, 0)?;

    // Enough frames to push the last sample through the encoder's lookahead; the last granule trims the rest.
    let end = pcm.len() as u64 + u64::from(pre_skip);
    let frames = end.div_ceil(FRAME as u64).max(1);
    let mut frame = [0f32; FRAME];
    for k in 0..frames {
        let from = (k as usize * FRAME).min(pcm.len());
        let to = (from + FRAME).min(pcm.len());
        frame.fill(0.0);
        frame[..to - from].copy_from_slice(&pcm[from..to]);
        let packet = encoder.encode(&frame)?;
        let last = k + 1 == frames;
        let granule = if last { end } else { (k + 1) * FRAME as u64 };
        let info = if last {
            PacketWriteEndInfo::EndStream
        } else {
            PacketWriteEndInfo::NormalPacket
        };
        ogg.write_packet(packet, serial, info, granule)?;
    }
    Ok(ogg.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(seconds: f32, rate: u32) -> Vec<f32> {
        (0..(seconds * rate as f32) as usize)
            .map(|i| 0.4 * (i as f32 * 440.0 * std::f32::consts::TAU / rate as f32).sin())
            .collect()
    }

    /// The pages of an Ogg stream, read back with the `ogg` crate's reader.
    fn packets(bytes: &[u8]) -> Vec<ogg::Packet> {
        let mut reader = ogg::PacketReader::new(std::io::Cursor::new(bytes));
        let mut out = Vec::new();
        while let Some(p) = reader.read_packet().expect("a valid Ogg stream") {
            out.push(p);
        }
        out
    }

    #[test]
    fn a_reply_is_a_valid_ogg_opus_stream_whose_granules_give_its_exact_length() {
        let audio = tone(1.5, 22_050);
        let bytes = to_ogg_opus(&audio, 22_050).unwrap();
        let packets = packets(&bytes);
        assert_eq!(&packets[0].data[..8], b"OpusHead");
        assert_eq!(packets[0].data[9], 1, "mono");
        let pre_skip = u16::from_le_bytes([packets[0].data[10], packets[0].data[11]]);
        assert!(pre_skip > 0, "libopus always looks ahead");
        assert_eq!(
            u32::from_le_bytes(packets[0].data[12..16].try_into().unwrap()),
            22_050
        );
        assert_eq!(&packets[1].data[..8], b"OpusTags");
        let last = packets.last().unwrap();
        assert!(last.last_in_stream());
        // 1.5 s at 48 kHz, plus the pre-skip the player drops.
        assert_eq!(last.absgp_page(), 72_000 + u64::from(pre_skip));
        assert_eq!(
            packets.len() - 2,
            (72_000 + pre_skip as usize).div_ceil(FRAME)
        );
        // 32 kb/s: about 6 KB for 1.5 s, far under the 66 KB of the WAV.
        assert!(bytes.len() < 9_000, "{} bytes", bytes.len());
    }

    #[test]
    fn no_audio_is_still_a_playable_stream() {
        let bytes = to_ogg_opus(&[], 22_050).unwrap();
        let packets = packets(&bytes);
        assert_eq!(packets.len(), 3, "head, tags and one frame of silence");
        let pre_skip = u16::from_le_bytes([packets[0].data[10], packets[0].data[11]]);
        assert_eq!(packets[2].absgp_page(), u64::from(pre_skip));
    }
}
