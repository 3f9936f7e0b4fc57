#include "ionlab_png.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct output {
    uint8_t *bytes;
    size_t length;
    size_t capacity;
    int failed;
};

struct failure {
    jmp_buf jump;
    char *message;
    size_t size;
};

static void on_error(png_structp png, png_const_charp message) {
    struct failure *failure = png_get_error_ptr(png);
    snprintf(failure->message, failure->size, "%s", message);
    longjmp(failure->jump, 1);
}

static void on_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

static void on_write(png_structp png, png_bytep data, png_size_t length) {
    struct output *output = png_get_io_ptr(png);
    if (output->failed) return;
    if (output->length + length > output->capacity) {
        size_t capacity = output->capacity ? output->capacity : 65536;
        while (capacity < output->length + length) capacity *= 2;
        uint8_t *grown = realloc(output->bytes, capacity);
        if (!grown) {
            output->failed = 1;
            png_error(png, "out of memory");
        }
        output->bytes = grown;
        output->capacity = capacity;
    }
    memcpy(output->bytes + output->length, data, length);
    output->length += length;
}

static void on_flush(png_structp png) { (void)png; }

int ionlab_png_encode_rgb(const uint8_t *rgb, uint32_t width, uint32_t height,
                          uint8_t **out, size_t *out_length, char *error, size_t error_size) {
    struct failure failure = {.message = error, .size = error_size};
    // On the heap: what libpng changes after setjmp must not live in this frame's registers.
    struct output *output = calloc(1, sizeof *output);
    if (!output) {
        snprintf(error, error_size, "out of memory");
        return -1;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &failure, on_error, on_warning);
    if (!png) {
        snprintf(error, error_size, "cannot start libpng");
        free(output);
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    // Everything libpng-owned is released on both paths; `output` is freed here only on failure.
    if (!info || setjmp(failure.jump)) {
        if (!info) snprintf(error, error_size, "cannot start libpng");
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(output->bytes);
        free(output);
        return -1;
    }
    png_set_write_fn(png, output, on_write, on_flush);
    png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    png_write_info(png, info);
    for (uint32_t row = 0; row < height; row++) {
        png_write_row(png, (png_const_bytep)(rgb + (size_t)row * width * 3));
    }
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    *out = output->bytes;
    *out_length = output->length;
    free(output);
    return 0;
}

struct input {
    const uint8_t *bytes;
    size_t length;
    size_t offset;
};

static void on_read(png_structp png, png_bytep data, png_size_t length) {
    struct input *input = png_get_io_ptr(png);
    if (length > input->length - input->offset) png_error(png, "the PNG is cut short");
    memcpy(data, input->bytes + input->offset, length);
    input->offset += length;
}

int ionlab_png_decode_rgb(const uint8_t *png_bytes, size_t length, uint32_t max_side, uint64_t max_pixels,
                          uint8_t **out, uint32_t *out_width, uint32_t *out_height, char *error, size_t error_size) {
    struct failure failure = {.message = error, .size = error_size};
    struct input input = {.bytes = png_bytes, .length = length};
    // On the heap, for the reason the encoder gives: libpng longjmps back into this frame.
    struct decoding {
        uint8_t *pixels;
        png_bytep *rows;
    } *decoding = calloc(1, sizeof *decoding);
    if (!decoding) {
        snprintf(error, error_size, "out of memory");
        return -1;
    }
    if (length < 8 || png_sig_cmp(png_bytes, 0, 8) != 0) {
        snprintf(error, error_size, "not a PNG (no PNG signature)");
        free(decoding);
        return -1;
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &failure, on_error, on_warning);
    if (!png) {
        snprintf(error, error_size, "cannot start libpng");
        free(decoding);
        return -1;
    }
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(failure.jump)) {
        if (!info) snprintf(error, error_size, "cannot start libpng");
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        free(decoding->pixels);
        free(decoding->rows);
        free(decoding);
        return -1;
    }
    png_set_read_fn(png, &input, on_read);
    // A picture announcing a huge size is refused before any row is allocated; so is a huge ancillary chunk.
    png_set_user_limits(png, max_side, max_side);
    png_set_chunk_malloc_max(png, 8 * 1024 * 1024);
    png_set_chunk_cache_max(png, 128);
    png_read_info(png, info);
    uint32_t width = png_get_image_width(png, info), height = png_get_image_height(png, info);
    if ((uint64_t)width * height > max_pixels) png_error(png, "the picture has more pixels than ionlab reads");
    // Whatever it holds becomes 8-bit RGB: palettes expanded, grey made colour, alpha and 16-bit samples dropped.
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)width * 3) png_error(png, "the picture does not read as 8-bit RGB");
    decoding->pixels = malloc((size_t)width * height * 3);
    decoding->rows = malloc(sizeof(png_bytep) * height);
    if (!decoding->pixels || !decoding->rows) png_error(png, "out of memory");
    for (uint32_t row = 0; row < height; row++) decoding->rows[row] = decoding->pixels + (size_t)row * width * 3;
    png_read_image(png, decoding->rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    *out = decoding->pixels;
    *out_width = width;
    *out_height = height;
    free(decoding->rows);
    free(decoding);
    return 0;
}
