package hypersdk

/*
#include "hypersdk.h"
*/
import "C"

import (
	"math"
	"time"
)

// Phase of an export; PhaseDone, PhaseFailed and PhaseCancelled are terminal.
type Phase int

// The values come from the C header: a phase renamed or removed there fails to compile here.

const (
	PhaseQueued          Phase = C.HS_PHASE_QUEUED
	PhasePreparing       Phase = C.HS_PHASE_PREPARING
	PhaseWaitingForCloud Phase = C.HS_PHASE_WAITING_FOR_CLOUD
	PhaseDownloading     Phase = C.HS_PHASE_DOWNLOADING
	PhaseVerifying       Phase = C.HS_PHASE_VERIFYING
	PhaseFinalizing      Phase = C.HS_PHASE_FINALIZING
	PhaseDone            Phase = C.HS_PHASE_DONE
	PhaseFailed          Phase = C.HS_PHASE_FAILED
	PhaseCancelled       Phase = C.HS_PHASE_CANCELLED
)

func (p Phase) String() string { return C.GoString(C.hs_phase_name(C.int32_t(p))) }

// Terminal reports whether the export has ended in this phase.
func (p Phase) Terminal() bool { return p == PhaseDone || p == PhaseFailed || p == PhaseCancelled }

// Progress is one reading of an export's progress.
type Progress struct {
	Phase Phase
	// FileIndex is 1-based; 0 before the first file starts.
	FileIndex int
	FileCount int
	FileName  string
	// BytesDone counts bytes in place, including ones kept from an earlier run.
	BytesDone uint64
	// BytesTotal is the best known total; 0 while unknown.
	BytesTotal     uint64
	FileBytesDone  uint64
	FileBytesTotal uint64
	// Rate is the smoothed rate of this run in bytes per second.
	Rate float64
	// ETA is negative when unknown.
	ETA time.Duration
	// Message is the provider's status message (e.g. a cloud task's status).
	Message string
}

// Fraction is BytesDone/BytesTotal in [0, 1], or 0 while the total is unknown.
func (p Progress) Fraction() float64 {
	if p.BytesTotal == 0 {
		return 0
	}
	return math.Min(1, float64(p.BytesDone)/float64(p.BytesTotal))
}

func progressFromC(p *C.hs_progress) Progress {
	eta := time.Duration(-1)
	if float64(p.eta_seconds) >= 0 {
		eta = time.Duration(float64(p.eta_seconds) * float64(time.Second))
	}
	return Progress{
		Phase:          Phase(p.phase),
		FileIndex:      int(p.file_index),
		FileCount:      int(p.file_count),
		FileName:       C.GoString(&p.file_name[0]),
		BytesDone:      uint64(p.bytes_done),
		BytesTotal:     uint64(p.bytes_total),
		FileBytesDone:  uint64(p.file_bytes_done),
		FileBytesTotal: uint64(p.file_bytes_total),
		Rate:           float64(p.rate_bytes_per_sec),
		ETA:            eta,
		Message:        C.GoString(&p.message[0]),
	}
}
