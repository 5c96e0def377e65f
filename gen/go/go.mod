module github.com/leadflow/leadflow/gen/go

go 1.25.0
