module github.com/leadflow/leadflow/services/capture

go 1.26.0

require (
	github.com/nyaruka/phonenumbers v1.8.1
	golang.org/x/net v0.53.0
	golang.org/x/text v0.43.0
)

require google.golang.org/protobuf v1.36.11 // indirect
