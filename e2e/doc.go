// Package e2e holds end-to-end tests of ticketrush: they build the real
// binary, run "ticketrush serve" as separate processes on loopback ports and
// break things around them (kill -9 mid-rush, database outages behind a
// severable TCP proxy, overload, hostile and slow clients), then check that
// no acknowledged reservation was lost and that the stock invariant holds.
//
// The package has no code outside its tests.
package e2e
