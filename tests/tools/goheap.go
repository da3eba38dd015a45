// goheap.go - a Go program that writes a Go heap profile (runtime/pprof) to os.Args[1]: leak()
// keeps 20MB, churn() allocates and drops more. vs_pprof.py compares `palloc top` with pprof on it,
// because palloc reads "any pprof heap profile", Go's own included (inlined frames, runtime names).

package main

import (
	"os"
	"runtime"
	"runtime/pprof"
)

var keep [][]byte

//go:noinline
func leak(n int) {
	for i := 0; i < n; i++ {
		keep = append(keep, make([]byte, 4096))
	}
}

func churn(n int) int {
	s := 0
	for i := 0; i < n; i++ {
		b := make([]byte, 1000+i%3000)
		s += len(b)
	}
	return s
}

func main() {
	runtime.MemProfileRate = 4096
	leak(5000)
	churn(20000)
	runtime.GC()
	f, _ := os.Create(os.Args[1])
	pprof.WriteHeapProfile(f)
	f.Close()
}
