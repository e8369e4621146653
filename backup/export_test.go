package backup

// OpenFileForTest exposes openFile to the external tests.
var OpenFileForTest = openFile
