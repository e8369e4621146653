package api

// MaxPageSize is the most entries one page of any list holds (/list,
// /jobs, /audit): a list takes its page size as limit or page_size.
const MaxPageSize = 1000

// Pagination is every list's page description.
type Pagination struct {
	Total      int64 `json:"total" required:"true" minimum:"0" doc:"entries the filter selects, on all pages"`
	Page       int   `json:"page" required:"true" minimum:"1"`
	PageSize   int   `json:"page_size" required:"true" minimum:"1" maximum:"1000" doc:"as asked with limit or page_size"`
	TotalPages int64 `json:"total_pages" required:"true" minimum:"0"`
}

// NewPagination describes page (of size) of total entries.
func NewPagination(total int64, page, size int) Pagination {
	return Pagination{Total: total, Page: page, PageSize: size, TotalPages: (total + int64(size) - 1) / int64(size)}
}
