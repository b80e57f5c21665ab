module github.com/hypersdk/hypersdk/bindings/go

go 1.22
