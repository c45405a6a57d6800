module acgs.local/pause

go 1.22
