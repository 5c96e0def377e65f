module github.com/leadflow/leadflow/services/capture

go 1.25.0
