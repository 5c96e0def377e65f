module github.com/leadflow/leadflow/tools

go 1.25.0
