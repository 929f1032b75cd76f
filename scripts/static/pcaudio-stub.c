/* The pcaudiolib entry points Debian's libespeak-ng.a refers to, for the static jarvis. Jarvis asks espeak-ng for
 * phonemes and samples only (AUDIO_OUTPUT_SYNCHRONOUS / espeak_ng_InitializeOutput with no device), so espeak-ng
 * never opens an audio device: these exist to satisfy the linker, and each fails cleanly if called anyway.
 * Linking the real pcaudiolib would pull in PulseAudio, which has no static library. */
#include <stddef.h>
#include <stdint.h>

struct audio_object;

struct audio_object *create_audio_device_object(const char *device, const char *application_name,
                                                const char *description) {
	(void)device; (void)application_name; (void)description;
	return NULL;
}
int audio_object_open(struct audio_object *o, int format, uint32_t rate, uint8_t channels) {
	(void)o; (void)format; (void)rate; (void)channels;
	return -1;
}
void audio_object_close(struct audio_object *o) { (void)o; }
void audio_object_destroy(struct audio_object *o) { (void)o; }
int audio_object_write(struct audio_object *o, const void *data, size_t bytes) {
	(void)o; (void)data; (void)bytes;
	return -1;
}
int audio_object_drain(struct audio_object *o) { (void)o; return -1; }
int audio_object_flush(struct audio_object *o) { (void)o; return -1; }
const char *audio_object_strerror(struct audio_object *o, int error) {
	(void)o; (void)error;
	return "no audio device in the static jarvis (espeak-ng is used for samples only)";
}
