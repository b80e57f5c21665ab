package hypersdk

/*
#include "hypersdk.h"
*/
import "C"

import (
	"errors"
	"fmt"
)

// Status is the library's status code (hs_status), stable across versions.
type Status int

// The values come from the C header: a status renamed or removed there fails to compile here.

const (
	StatusOK              Status = C.HS_STATUS_OK
	StatusInvalidArgument Status = C.HS_STATUS_INVALID_ARGUMENT
	StatusNotFound        Status = C.HS_STATUS_NOT_FOUND
	StatusAuth            Status = C.HS_STATUS_AUTH
	StatusAlreadyExists   Status = C.HS_STATUS_ALREADY_EXISTS
	StatusIO              Status = C.HS_STATUS_IO
	StatusNetwork         Status = C.HS_STATUS_NETWORK
	StatusVerification    Status = C.HS_STATUS_VERIFICATION
	StatusCancelled       Status = C.HS_STATUS_CANCELLED
	StatusTimeout         Status = C.HS_STATUS_TIMEOUT
	StatusUnsupported     Status = C.HS_STATUS_UNSUPPORTED
	StatusRemote          Status = C.HS_STATUS_REMOTE
	StatusInvalidState    Status = C.HS_STATUS_INVALID_STATE
	StatusPending         Status = C.HS_STATUS_PENDING
	StatusPanic           Status = C.HS_STATUS_PANIC
	StatusInternal        Status = C.HS_STATUS_INTERNAL
)

func (s Status) String() string { return C.GoString(C.hs_status_name(C.int32_t(s))) }

// Error categories, for errors.Is.
var (
	ErrInvalidArgument = errors.New("hypersdk: invalid argument")
	ErrNotFound        = errors.New("hypersdk: not found")
	ErrAuth            = errors.New("hypersdk: authentication failed")
	ErrAlreadyExists   = errors.New("hypersdk: already exists")
	ErrIO              = errors.New("hypersdk: I/O error")
	ErrNetwork         = errors.New("hypersdk: network error")
	ErrChecksum        = errors.New("hypersdk: verification failed")
	ErrCancelled       = errors.New("hypersdk: cancelled")
	ErrTimeout         = errors.New("hypersdk: timed out")
	ErrUnsupported     = errors.New("hypersdk: unsupported")
	ErrRemote          = errors.New("hypersdk: remote error")
	ErrInvalidState    = errors.New("hypersdk: invalid state")
	ErrInternal        = errors.New("hypersdk: internal error")
)

var categories = map[Status]error{
	StatusInvalidArgument: ErrInvalidArgument,
	StatusNotFound:        ErrNotFound,
	StatusAuth:            ErrAuth,
	StatusAlreadyExists:   ErrAlreadyExists,
	StatusIO:              ErrIO,
	StatusNetwork:         ErrNetwork,
	StatusVerification:    ErrChecksum,
	StatusCancelled:       ErrCancelled,
	StatusTimeout:         ErrTimeout,
	StatusUnsupported:     ErrUnsupported,
	StatusRemote:          ErrRemote,
	StatusInvalidState:    ErrInvalidState,
	StatusPanic:           ErrInternal,
	StatusInternal:        ErrInternal,
}

// Error is a failure reported by the library: its status, its message, and the phase of the
// export it ended (PhaseQueued for calls that are not about a running export).
type Error struct {
	Status  Status
	Message string
	Phase   Phase
	// cause is the context error when a context's cancellation ended the export.
	cause error
}

func (e *Error) Error() string {
	if e.Phase > PhaseQueued {
		return fmt.Sprintf("hypersdk: %s (during %s)", e.Message, e.Phase)
	}
	return "hypersdk: " + e.Message
}

// Is reports the category (ErrNotFound, ErrCancelled, …) and, for an export ended by its
// context, the context's error (context.Canceled or context.DeadlineExceeded).
func (e *Error) Is(target error) bool {
	if c, ok := categories[e.Status]; ok && c == target {
		return true
	}
	return e.cause != nil && errors.Is(e.cause, target)
}

// takeError converts and frees an hs_error (nil when err is NULL and status is OK).
func takeError(status C.hs_status, err *C.hs_error) error {
	if status == C.HS_STATUS_OK {
		C.hs_error_free(err)
		return nil
	}
	e := &Error{Status: Status(status), Message: Status(status).String(), Phase: PhaseQueued}
	if err != nil {
		e.Message = C.GoString(C.hs_error_message(err))
		e.Phase = Phase(C.hs_error_phase(err))
		C.hs_error_free(err)
	}
	return e
}
