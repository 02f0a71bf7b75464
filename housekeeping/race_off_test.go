//go:build !race

package housekeeping

const raceEnabled = false
