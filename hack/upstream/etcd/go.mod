// Wrapper module that builds etcd and etcdctl from the Go module proxy. Kept apart from the Kubernetes
// wrapper so that neither raises the other's shared dependencies.
module ferrokube.dev/hack/upstream/etcd

go 1.26.0

require (
	go.etcd.io/etcd/server/v3 v3.6.16
	go.etcd.io/etcd/etcdctl/v3 v3.6.16
)
