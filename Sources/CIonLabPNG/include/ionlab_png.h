#ifndef IONLAB_PNG_H
#define IONLAB_PNG_H

#include <stddef.h>
#include <stdint.h>

/// Encodes 8-bit RGB pixels (rows of width * 3 bytes, top first) as a PNG in memory, with libpng. On success
/// returns 0 and sets *out (free it with free()) and *out_length; on failure returns -1 and writes libpng's
/// message into `error`. libpng reports errors by longjmp, which Swift cannot catch: this is why it is C.
int ionlab_png_encode_rgb(const uint8_t *rgb, uint32_t width, uint32_t height,
                          uint8_t **out, size_t *out_length, char *error, size_t error_size);

/// Decodes a PNG in memory into 8-bit RGB pixels (rows of width * 3 bytes, top first), whatever its colour type,
/// depth or interlacing. A picture wider or taller than `max_side`, with more than `max_pixels`, or with an
/// ancillary chunk over 8 MiB is refused before its rows are allocated. On success returns 0 and sets *out
/// (free it with free()), *out_width and *out_height; on failure returns -1 with libpng's message in `error`.
int ionlab_png_decode_rgb(const uint8_t *png, size_t length, uint32_t max_side, uint64_t max_pixels,
                          uint8_t **out, uint32_t *out_width, uint32_t *out_height, char *error, size_t error_size);

#endif
