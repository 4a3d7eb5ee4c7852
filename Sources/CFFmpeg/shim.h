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
/* More macros that Swift cannot import. */
static inline int cffmpeg_averror_stream_not_found(void) { return AVERROR_STREAM_NOT_FOUND; }
static inline int cffmpeg_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }
static inline int cffmpeg_averror_exit(void) { return AVERROR_EXIT; }
static inline int cffmpeg_averror_decoder_not_found(void) { return AVERROR_DECODER_NOT_FOUND; }
static inline int cffmpeg_disposition_attached_pic(void) { return AV_DISPOSITION_ATTACHED_PIC; }
static inline int64_t cffmpeg_time_base(void) { return AV_TIME_BASE; }

/* Install an interrupt callback (checked by libavformat during blocking I/O). */
static inline void cffmpeg_set_interrupt_callback(AVFormatContext *fmt, int (*cb)(void *), void *opaque) {
    fmt->interrupt_callback.callback = cb;
    fmt->interrupt_callback.opaque = opaque;
}

/* swr_alloc_set_opts2 takes non-const layouts in 5.1 and const ones later: keep the call in C. */
static inline int cffmpeg_swr_alloc_to_s16_stereo(struct SwrContext **s, int out_rate,
                                                  const AVChannelLayout *in_layout, int in_fmt, int in_rate) {
    AVChannelLayout out_layout;
    av_channel_layout_default(&out_layout, 2);
    return swr_alloc_set_opts2(s, &out_layout, AV_SAMPLE_FMT_S16, out_rate,
                               (AVChannelLayout *)in_layout, (enum AVSampleFormat)in_fmt, in_rate, 0, NULL);
}
#endif
