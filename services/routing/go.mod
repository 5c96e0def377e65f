module github.com/leadflow/leadflow/services/routing

go 1.26.0

require (
	github.com/leadflow/leadflow/gen/go v0.0.0
	github.com/leadflow/leadflow/services/platform v0.0.0
)

replace (
	github.com/leadflow/leadflow/gen/go => ../../gen/go
	github.com/leadflow/leadflow/services/platform => ../platform
)
