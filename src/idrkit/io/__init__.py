"""Every file format idrkit reads and writes: readers, output formats, safe output files, prediction files."""

from .files import (PredictionWriter, StreamWriter, atomic_folder, atomic_path, check_model_folder_output,
                    check_output, stdout_writer, write_text_atomic)
from .formats import (OUTPUT_FORMATS, OutputFormat, caid_text, format_scores, json_text, labelled_fasta_text,
                      output_format, residue_rows, safe_filename, table_text)
from .predictions import PredictedResidues, ProteomeSummary, read_predictions, read_proteome
from .readers import (READERS, count_fasta_records, detect_format, iter_csv, iter_fasta, iter_pickle, iter_records,
                      read_records, records_from_text)

__all__ = ["OUTPUT_FORMATS", "READERS", "OutputFormat", "PredictedResidues", "ProteomeSummary", "PredictionWriter", "StreamWriter",
           "atomic_folder", "atomic_path", "caid_text", "check_model_folder_output", "check_output",
           "count_fasta_records", "detect_format", "format_scores",
           "iter_csv", "iter_fasta", "iter_pickle", "iter_records", "json_text", "labelled_fasta_text",
           "output_format", "read_predictions", "read_proteome", "read_records", "records_from_text", "residue_rows",
           "safe_filename", "stdout_writer", "table_text", "write_text_atomic"]
