module github.com/leadflow/leadflow/services/routing

go 1.25.0
