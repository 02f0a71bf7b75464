//go:build race

package housekeeping

// raceEnabled: the race detector multiplies memory use, so memory bounds
// are not measured under it.
const raceEnabled = true
