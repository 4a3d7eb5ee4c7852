#ifndef SWIFT_ATV_CFFMPEG_SHIM_H
#define SWIFT_ATV_CFFMPEG_SHIM_H
#include <libavformat/avformat.h>
#include <libavformat/avio.h>
#include <libavcodec/avcodec.h>
#include <libavutil/avutil.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libavutil/samplefmt.h>
#include <libavutil/error.h>
#include <libavutil/mem.h>
#include <libavutil/dict.h>
#include <libswresample/swresample.h>
#include <errno.h>

/* Function-like macros are not imported into Swift: wrap them. */
static inline int cffmpeg_averror_eagain(void) { return AVERROR(EAGAIN); }
static inline int cffmpeg_averror_eof(void) { return AVERROR_EOF; }
static inline int cffmpeg_averror(int e) { return AVERROR(e); }
static inline int64_t cffmpeg_nopts_value(void) { return AV_NOPTS_VALUE; }

/* swr_convert's pointer types differ between FFmpeg 5.1 and 7.x: keep the call in C. */
static inline int cffmpeg_swr_convert_to_interleaved(struct SwrContext *s, uint8_t *out, int out_count, const AVFrame *in) {
    uint8_t *outs[1] = { out };
    return swr_convert(s, outs, out_count, in ? (const uint8_t **)in->extended_data : NULL, in ? in->nb_samples : 0);
}
#endif
