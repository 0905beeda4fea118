# The README's two commands: `make lab` and `make test` (both as root).
.PHONY: lab lab-down test unit bench fleet build diagram

lab:
	scripts/lab.sh run $(if $(KEEP),--keep)

lab-down:
	scripts/lab.sh down

test:
	scripts/test.sh

unit:
	go test ./bootstrap/...

bench:
	scripts/bench.sh

fleet:
	scripts/fleet.sh

build:
	scripts/build.sh

diagram:
	go generate ./bootstrap/fsm
