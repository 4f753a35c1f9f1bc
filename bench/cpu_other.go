//go:build !unix

package bench

import "time"

// processCPU is 0 where the bench does not know how to read it: the
// report then shows no CPU cost.
func processCPU() time.Duration { return 0 }
