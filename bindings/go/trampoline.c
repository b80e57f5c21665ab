// C side of the progress callback: hs_progress_cb takes a const pointer, which a Go export
// cannot declare, so this forwards to the exported Go function.
#include <stdint.h>
#include "hypersdk.h"
#include "_cgo_export.h"

void hs_go_trampoline(void *user_data, const hs_progress *p) {
  hsGoProgress((uintptr_t)user_data, (hs_progress *)p);
}

void *hs_go_user_data(uintptr_t handle) { return (void *)handle; }
