module bitcask-example

go 1.19
