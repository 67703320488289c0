//go:build !linux

package binarypages

// PageOut does nothing outside Linux, where there is no MADV_PAGEOUT.
func PageOut() (int, error) { return 0, nil }
