module github.com/leadflow/leadflow/k8s

go 1.25.0
