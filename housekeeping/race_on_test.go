//go:build race

package housekeeping

// raceEnabled: the race detector multiplies memory use and time, so memory
// bounds are not measured under it.
const raceEnabled = true
