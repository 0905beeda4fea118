package fsm

//go:generate go run ./gen ../../docs/state-machine.md
