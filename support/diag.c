/*
 * diag.c: diagnostics as text, `file:line:col: error: message`, then the source line and a
 * caret under the column.
 *
 * The source line is found by walking the file from its start, which is cheap next to the
 * compile and keeps locations to three small numbers. Bytes that are not printable ASCII are
 * shown as '?' so that a diagnostic about a non-UTF-8 byte is itself clean text; tabs are
 * kept in the caret line so that the caret lines up in a terminal. A very long line is shown as
 * a window around the column.
 */
#include "support.h"

#include <stdio.h>

static const char *severity_name(DiagSeverity sev) {
    switch (sev) {
    case DIAG_ERROR: return "error";
    case DIAG_WARNING: return "warning";
    case DIAG_NOTE: return "note";
    }
    return "error";
}

/* A line longer than this is shown as a window around the column, cut ends marked "...". */
enum { LINE_WINDOW = 160 };

static void put_source_line(Strbuf *sb, SrcLoc loc) {
    const SourceFile *f = loc.file;
    if (!f || !f->text || loc.line == 0) return;
    size_t pos = 0;
    for (uint32_t line = 1; line < loc.line && pos < f->len; pos++)
        if (f->text[pos] == '\n') line++;
    if (pos > f->len) return;
    size_t line_end = pos;
    while (line_end < f->len && f->text[line_end] != '\n') line_end++;
    size_t at = pos + (loc.col ? loc.col - 1 : 0);
    if (at > line_end) at = line_end;
    size_t from = pos, to = line_end;
    if (to - from > LINE_WINDOW) {
        from = at > pos + LINE_WINDOW / 2 ? at - LINE_WINDOW / 2 : pos;
        to = from + LINE_WINDOW < line_end ? from + LINE_WINDOW : line_end;
    }
    bool cut_front = from > pos;
    sb_puts(sb, cut_front ? "  ..." : "  ");
    for (size_t i = from; i < to; i++) {
        unsigned char c = (unsigned char)f->text[i];
        sb_putc(sb, (c == '\t' || (c >= 32 && c < 127)) ? (char)c : (c == '\r' ? ' ' : '?'));
    }
    sb_puts(sb, to < line_end ? "...\n" : "\n");
    sb_puts(sb, cut_front ? "     " : "  ");
    for (size_t i = from; i < at; i++) sb_putc(sb, f->text[i] == '\t' ? '\t' : ' ');
    sb_puts(sb, "^\n");
}

void diag_vreport(DiagList *d, DiagSeverity sev, SrcLoc loc, const char *fmt, va_list ap) {
    int limit = d->max_errors ? d->max_errors : 50;
    if (sev == DIAG_ERROR) {
        d->errors++;
        if (d->errors == limit + 1) {
            sb_puts(&d->text, "error: too many errors, stopping here\n");
            return;
        }
        if (d->errors > limit) return;
    } else if (sev == DIAG_WARNING) {
        d->warnings++;
    } else if (d->errors > limit) {
        return;
    }
    if (loc.file)
        sb_printf(&d->text, "%s:%u:%u: ", loc.file->name, loc.line, loc.col);
    sb_printf(&d->text, "%s: ", severity_name(sev));
    sb_vprintf(&d->text, fmt, ap);
    sb_putc(&d->text, '\n');
    put_source_line(&d->text, loc);
}

void diag_report(DiagList *d, DiagSeverity sev, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(d, sev, loc, fmt, ap);
    va_end(ap);
}

void diag_error(DiagList *d, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(d, DIAG_ERROR, loc, fmt, ap);
    va_end(ap);
}

void diag_note(DiagList *d, SrcLoc loc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    diag_vreport(d, DIAG_NOTE, loc, fmt, ap);
    va_end(ap);
}

void diag_internal(DiagList *d, SrcLoc loc, const char *pass, const char *fmt, ...) {
    Strbuf msg = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&msg, fmt, ap);
    va_end(ap);
    diag_report(d, DIAG_ERROR, loc, "internal error in pass %s: %s", pass, sb_str(&msg));
    d->internal++;
    sb_free(&msg);
}

void diag_free(DiagList *d) {
    sb_free(&d->text);
    d->errors = d->warnings = d->internal = 0;
}
