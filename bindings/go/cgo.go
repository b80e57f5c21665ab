package hypersdk

/*
#cgo pkg-config: hypersdk
#include <stdint.h>
#include <stdlib.h>
#include "hypersdk.h"

void hs_go_trampoline(void *user_data, const hs_progress *p);
void *hs_go_user_data(uintptr_t handle);
*/
import "C"
