/* Prints the ABI facts a compiled program depends on, as the header gives them: struct sizes and
 * field offsets, enum values, the size macros. tests/c_abi.rs compares the output with the
 * committed tests/abi/layout.txt, so any change to them is a deliberate act (see the README's
 * ABI rule). */
#include <stdio.h>
#include <stddef.h>
#include "hypersdk.h"

#define SIZE(t) printf("size %s %zu\n", #t, sizeof(t))
#define FIELD(t, f) printf("offset %s.%s %zu\n", #t, #f, offsetof(t, f))
#define VALUE(v) printf("value %s %ld\n", #v, (long)(v))

int main(void) {
    SIZE(hs_progress);
    FIELD(hs_progress, phase);
    FIELD(hs_progress, file_index);
    FIELD(hs_progress, file_count);
    FIELD(hs_progress, bytes_done);
    FIELD(hs_progress, bytes_total);
    FIELD(hs_progress, file_bytes_done);
    FIELD(hs_progress, file_bytes_total);
    FIELD(hs_progress, rate_bytes_per_sec);
    FIELD(hs_progress, eta_seconds);
    FIELD(hs_progress, file_name);
    FIELD(hs_progress, message);
    SIZE(hs_status);
    SIZE(hs_phase);
    VALUE(HS_FILE_NAME_MAX);
    VALUE(HS_MESSAGE_MAX);
    VALUE(HS_STATUS_OK);
    VALUE(HS_STATUS_INVALID_ARGUMENT);
    VALUE(HS_STATUS_NOT_FOUND);
    VALUE(HS_STATUS_AUTH);
    VALUE(HS_STATUS_ALREADY_EXISTS);
    VALUE(HS_STATUS_IO);
    VALUE(HS_STATUS_NETWORK);
    VALUE(HS_STATUS_VERIFICATION);
    VALUE(HS_STATUS_CANCELLED);
    VALUE(HS_STATUS_TIMEOUT);
    VALUE(HS_STATUS_UNSUPPORTED);
    VALUE(HS_STATUS_REMOTE);
    VALUE(HS_STATUS_INVALID_STATE);
    VALUE(HS_STATUS_PENDING);
    VALUE(HS_STATUS_PANIC);
    VALUE(HS_STATUS_INTERNAL);
    VALUE(HS_PHASE_QUEUED);
    VALUE(HS_PHASE_PREPARING);
    VALUE(HS_PHASE_WAITING_FOR_CLOUD);
    VALUE(HS_PHASE_DOWNLOADING);
    VALUE(HS_PHASE_VERIFYING);
    VALUE(HS_PHASE_FINALIZING);
    VALUE(HS_PHASE_DONE);
    VALUE(HS_PHASE_FAILED);
    VALUE(HS_PHASE_CANCELLED);
    return 0;
}
