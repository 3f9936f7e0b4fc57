#ifndef IONLAB_PNG_H
#define IONLAB_PNG_H

#include <stddef.h>
#include <stdint.h>

/// Encodes 8-bit RGB pixels (rows of width * 3 bytes, top first) as a PNG in memory, with libpng. On success
/// returns 0 and sets *out (free it with free()) and *out_length; on failure returns -1 and writes libpng's
/// message into `error`. libpng reports errors by longjmp, which Swift cannot catch: this is why it is C.
int ionlab_png_encode_rgb(const uint8_t *rgb, uint32_t width, uint32_t height,
                          uint8_t **out, size_t *out_length, char *error, size_t error_size);

#endif
