module github.com/leadflow/leadflow/services/reporting

go 1.26.0

require (
	github.com/leadflow/leadflow/gen/go v0.0.0
	github.com/leadflow/leadflow/services/platform v0.0.0
)

replace (
	github.com/leadflow/leadflow/gen/go => ../../gen/go
	github.com/leadflow/leadflow/services/platform => ../platform
)

require (
	github.com/google/go-cmp v0.7.0
	github.com/google/uuid v1.6.0
	github.com/redis/go-redis/v9 v9.23.0
	go.opentelemetry.io/otel v1.47.0
	go.opentelemetry.io/otel/metric v1.47.0
	go.opentelemetry.io/otel/sdk/metric v1.47.0
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)
