# The user-facing commands. `make up` and `make test` do all the set-up themselves.

CARGO ?= cargo
# What `ferrokube up` runs from upstream (and kubectl for its users); `make upstream` builds every binary.
CLUSTER_BINS := etcd kube-apiserver kubectl kube-proxy coredns metrics-server
# The tests run clusters of `ferrokube up`, so they need the same.
TEST_BINS := $(CLUSTER_BINS)
FERROKUBE := target/debug/ferrokube

.PHONY: deps upstream build lint test up demo down bench-scheduler bench-controllers bench-kubelet

deps:
	@hack/deps.sh

upstream: deps
	@hack/upstream/build.sh

build: deps
	$(CARGO) build --workspace --all-targets

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: deps lint
	@hack/upstream/build.sh $(TEST_BINS)
	$(CARGO) build --workspace --all-targets
	$(CARGO) test --workspace --no-fail-fast

# A two-node cluster on this host until Ctrl-C (as root). `make up ARGS="--nodes 3"` for more nodes.
up: deps
	@hack/upstream/build.sh $(CLUSTER_BINS)
	$(CARGO) build --workspace --bins
	$(FERROKUBE) up $(ARGS)

# Brings a cluster up, walks through what a user does with kubectl, checks each step, takes it down.
demo: deps
	@hack/upstream/build.sh $(CLUSTER_BINS)
	$(CARGO) build --workspace --bins
	$(FERROKUBE) demo $(ARGS)

# Removes whatever a cluster of `make up` left, also after a crash.
down:
	$(CARGO) build --bin ferrokube
	$(FERROKUBE) down

# ferrokube-scheduler and upstream kube-scheduler side by side, release builds; results in bench-out/.
# Flags go in ARGS, e.g. `make bench-scheduler ARGS="--nodes 100 --pods 500"` (see docs/benchmarks.md).
bench-scheduler: deps
	@hack/upstream/build.sh etcd kube-apiserver kube-scheduler
	$(CARGO) build --release -p ferrokube-cluster -p ferrokube-scheduler
	target/release/ferrokube bench scheduler $(ARGS)

# ferrokube-controller-manager and upstream kube-controller-manager side by side, release builds; results in
# bench-out/. E.g. `make bench-controllers ARGS="--replicas 1000 --qps 5000 --burst 5000"`.
bench-controllers: deps
	@hack/upstream/build.sh etcd kube-apiserver kube-controller-manager
	$(CARGO) build --release -p ferrokube-cluster -p ferrokube-controller-manager
	target/release/ferrokube bench controllers $(ARGS)

# ferrokube-kubelet and upstream's kubelet, each on a containerd of its own (upstream's through the CRI plugin),
# release builds; as root. Results in bench-out/. E.g. `make bench-kubelet ARGS="--implementations ferrokube"`.
bench-kubelet: deps
	@hack/upstream/build.sh etcd kube-apiserver kubelet
	$(CARGO) build --release -p ferrokube-cluster -p ferrokube-kubelet
	target/release/ferrokube bench kubelet $(ARGS)
